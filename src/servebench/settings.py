"""The settings of a run, typed: the profile (params/default.yaml, with --quick or --profile read
over it, servebench.config.load_profile) as the benchmark, the rounds and the run use it.

The notebooks get the same values through papermill; these models are what Python code reads, so
that a setting is named, typed and checked once, and a profile with a misspelt or ill-typed
benchmark setting is a message rather than a run that quietly measures something else."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from servebench.config import ProfileError

BENCHMARK_NOTEBOOK = "04_benchmark"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BenchmarkSettings(_Strict):
    """How one endpoint is measured: notebook 04's parameters, less where the endpoint is."""

    seed: int = 42
    parity_tolerance: float = Field(gt=0)
    native_window_s: float = Field(gt=0)
    native_warmup: int = Field(ge=0)
    windows: int = Field(ge=1)
    slo_p99_ms: float = Field(gt=0)
    ladder_start: float = Field(gt=0)
    ladder_max_rate: float = Field(gt=0)
    ladder_steps_per_doubling: int = Field(ge=1)
    ladder_step_s: float = Field(gt=0)
    ladder_refine: int = Field(ge=0)
    # > 0: the closed loop is measured before the ladder, and the ladder starts at the highest of
    # its rates not above this fraction of the closed-loop peak (0: at ladder_start)
    ladder_from_peak: float = Field(default=0.0, ge=0, le=1)
    open_loop_connections: int = Field(ge=1)
    concurrency: tuple[int, ...]
    load_duration_s: float = Field(gt=0)
    n_requests: int = Field(ge=1)
    warmup: int = Field(ge=0)
    bootstrap_resamples: int = Field(ge=1)
    batch: int = Field(default=1, ge=1, le=1024)

    @property
    def ladder_rates(self) -> list[float]:
        from servebench.bench.ladder import ladder_rates

        return ladder_rates(self.ladder_start, self.ladder_max_rate, self.ladder_steps_per_doubling)

    def ladder_rates_from(self, peak: float) -> list[float]:
        """The ladder's rates from the highest not above `ladder_from_peak` × `peak` (a closed-loop
        peak): the same grid for every endpoint, entered near where each one's capacity lies."""
        from servebench.bench.ladder import rates_from

        return rates_from(self.ladder_rates, self.ladder_from_peak * peak)


class GeneratorSettings(_Strict):
    rate_multiples: tuple[float, ...] = (1.2,)
    step_s: float = Field(default=5, gt=0)


class SoakSettings(_Strict):
    concurrency: int = Field(default=256, ge=1)
    duration_s: float = Field(default=30, gt=0)


class RunSettings(_Strict):
    """Everything of a run that is not a notebook's own parameter, and the benchmark's settings."""

    benchmark: BenchmarkSettings
    native_rounds: int = Field(default=1, ge=1)
    capacity_rounds: int = Field(default=0, ge=0)
    hold_cpu_idle: bool = True
    generator: GeneratorSettings = GeneratorSettings()
    soak: SoakSettings = SoakSettings()

    @property
    def later_rounds(self) -> int:
        """The capacity rounds, after the benchmark, that measure a share of windows too: trials of
        both, so that a run visits every endpoint once for each."""
        return min(self.capacity_rounds, max(0, min(self.native_rounds, self.benchmark.windows) - 1))

    @property
    def earlier_rounds(self) -> int:
        """Single-request rounds before the benchmark's own: none unless there are windows to share;
        the `native_rounds` less the benchmark's and the later ones."""
        return max(0, min(self.native_rounds, self.benchmark.windows) - 1 - self.later_rounds)

    @property
    def benchmark_windows(self) -> int:
        """The windows the benchmark is given to reach, with those of the rounds before it: all
        but the later rounds' share."""
        return self.benchmark.windows - self.later_rounds * self.windows_per_round

    @property
    def windows_per_round(self) -> int:
        """An equal share of each endpoint's windows per round; the benchmark takes what is left."""
        return max(1, self.benchmark.windows // self.native_rounds)


def benchmark_values(profile: dict[str, Any]) -> dict[str, Any]:
    """The benchmark notebook's values in the profile: the common ones it uses, then its own."""
    common = profile.get("common", {})
    own = (profile.get("notebooks", {}) or {}).get(BENCHMARK_NOTEBOOK) or {}
    fields = BenchmarkSettings.model_fields
    return {**{k: v for k, v in common.items() if k in fields}, **own}


def run_settings(profile: dict[str, Any]) -> RunSettings:
    """The typed settings of a loaded profile; a ProfileError that names the setting when one is
    missing, unknown or of the wrong type."""
    doc = {k: v for k, v in profile.items() if k not in ("common", "notebooks", "extends")}
    try:
        return RunSettings(benchmark=BenchmarkSettings(**benchmark_values(profile)), **doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'profile'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ProfileError(f"the profile's settings are not usable: {problems}") from None
