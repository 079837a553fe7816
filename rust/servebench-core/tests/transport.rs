//! The transport on a real socket, with raw HTTP/1.1: slow, idle and abusive clients, limits,
//! pipelining, 100-continue, HTTP/1.0, and shutdown.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use servebench_core::serve::{Limits, serve};
use tokio::sync::oneshot;

const OK: &str =
    r#"{"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}"#;
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

struct Server {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                let limits = Limits {
                    header_read_timeout: HEADER_TIMEOUT,
                    request_timeout: REQUEST_TIMEOUT,
                    ..Limits::default()
                };
                serve(listener, common::app(), &limits, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        Server {
            address: ready_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// A fresh connection's GET /health: its status and how long it took.
    fn health(&self) -> (u16, Duration) {
        let start = Instant::now();
        let mut stream = self.connect();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let status = read_response(&mut BufReader::new(stream)).status;
        (status, start.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }
}

/// One response; `status` 0 if the connection closed before a status line.
fn read_response(reader: &mut impl BufRead) -> Response {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return Response {
            status: 0,
            headers: Vec::new(),
            body: String::new(),
        };
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        match line.trim_end().split_once(':') {
            Some((name, value)) => headers.push((name.to_string(), value.trim().to_string())),
            None => break,
        }
    }
    let mut response = Response {
        status,
        headers,
        body: String::new(),
    };
    let length = response
        .header("content-length")
        .map_or(0, |n| n.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    response.body = String::from_utf8(body).unwrap();
    response
}

fn predict_request(body: &str) -> String {
    format!(
        "POST /predict/pytorch_onnx HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// True if the server closes the connection (after sending whatever it had to) before the
/// read timeout.
fn closed(stream: &mut TcpStream) -> bool {
    match stream.read_to_end(&mut Vec::new()) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn a_body_over_the_limit_gets_its_413_not_a_reset() {
    let server = Server::start();
    for extra in [1, 3 << 20] {
        let length = (1 << 20) + extra;
        let mut stream = server.connect();
        let head = format!(
            "POST /predict/pytorch_onnx HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        // Like most clients, send the whole body before reading.
        let sent = stream.write_all(&vec![b' '; length]);
        let response = read_response(&mut BufReader::new(stream));
        assert_eq!(response.status, 413, "{length} bytes (sending: {sent:?})");
        assert!(response.body.contains("1048576"), "{}", response.body);
    }
    // Chunked, with no length known up front.
    let mut stream = server.connect();
    let head = "POST /predict/pytorch_onnx HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
    for _ in 0..17 {
        stream.write_all(chunk.as_bytes()).unwrap();
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    assert_eq!(read_response(&mut BufReader::new(stream)).status, 413);
    assert_eq!(server.health().0, 200);
}

#[test]
fn slow_and_idle_clients_neither_delay_others_nor_stay_forever() {
    let server = Server::start();
    let idle: Vec<TcpStream> = (0..500).map(|_| server.connect()).collect();
    // A client sending its head one byte at a time, and never finishing it.
    let address = server.address;
    let slowloris = thread::spawn(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        let start = Instant::now();
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if stream.write_all(&[*byte]).is_err() || start.elapsed() > Duration::from_secs(10) {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    });
    thread::sleep(Duration::from_millis(200));
    let (status, took) = server.health();
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(500), "{took:?}");

    // After the header timeout, both kinds are gone.
    let cut_after = slowloris.join().unwrap();
    assert!(
        cut_after < HEADER_TIMEOUT * 3,
        "slow client held for {cut_after:?}"
    );
    for mut stream in idle {
        assert!(closed(&mut stream));
    }
    assert_eq!(server.health().0, 200);
}

#[test]
fn oversized_heads_are_refused() {
    let server = Server::start();
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(16 << 20)
    );
    let many_headers = format!(
        "GET /health HTTP/1.1\r\n{}\r\n",
        "X-A: b\r\n".repeat(50_000)
    );
    let long_url = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000));
    for request in [huge_header, many_headers, long_url] {
        let mut stream = server.connect();
        let _ = stream.write_all(request.as_bytes());
        let status = read_response(&mut BufReader::new(stream)).status;
        // A 4xx, or the connection closed before the server could answer.
        assert!(status == 0 || (400..500).contains(&status), "{status}");
    }
    assert_eq!(server.health().0, 200);
}

#[test]
fn content_length_with_transfer_encoding_is_read_one_way() {
    let server = Server::start();
    let mut stream = server.connect();
    let request = format!(
        "POST /predict/pytorch_onnx HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{OK}\r\n0\r\n\r\n",
        OK.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let response = read_response(&mut reader);
    // RFC 9112: chunked wins, and the connection is closed after the response.
    assert!(matches!(response.status, 200 | 400), "{}", response.status);
    assert!(closed(&mut stream));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start();
    let mut stream = server.connect();
    let female = OK.replace("\"Pclass\": 3", "\"Pclass\": 1");
    let requests = [
        predict_request(OK),
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        predict_request(&female),
        predict_request("{"),
    ];
    stream.write_all(requests.concat().as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let answers: Vec<(u16, String)> = (0..4)
        .map(|_| read_response(&mut reader))
        .map(|r| (r.status, r.body))
        .collect();
    assert_eq!(
        answers[0],
        (200, r#"{"survived":0,"probability":0.25}"#.into())
    );
    assert_eq!(answers[1].0, 200);
    assert!(answers[1].1.contains("\"status\":\"ok\""));
    assert_eq!(
        answers[2],
        (200, r#"{"survived":1,"probability":0.75}"#.into())
    );
    assert_eq!(answers[3].0, 400);
}

#[test]
fn expect_100_continue_and_http_1_0() {
    let server = Server::start();
    let mut stream = server.connect();
    let head = format!(
        "POST /predict/pytorch_onnx HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        OK.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert_eq!(read_response(&mut reader).status, 100);
    stream.write_all(OK.as_bytes()).unwrap();
    let response = read_response(&mut reader);
    assert_eq!(response.status, 200);
    assert!(response.header("server-timing").is_some());

    let mut stream = server.connect();
    stream.write_all(b"GET /health HTTP/1.0\r\n\r\n").unwrap();
    let response = read_response(&mut BufReader::new(stream.try_clone().unwrap()));
    assert_eq!(response.status, 200);
    assert!(closed(&mut stream));
}

#[test]
fn a_client_that_hangs_up_mid_body_does_not_hurt() {
    let server = Server::start();
    for _ in 0..20 {
        let mut stream = server.connect();
        let head = predict_request(OK);
        let cut = head.len() - OK.len() / 2;
        stream.write_all(&head.as_bytes()[..cut]).unwrap();
        drop(stream);
    }
    // Content-Length larger than what arrives; the client waits, then gives up.
    let mut stream = server.connect();
    let head = predict_request(OK).replace(&format!("Length: {}", OK.len()), "Length: 500");
    stream.write_all(head.as_bytes()).unwrap();
    thread::sleep(Duration::from_millis(100));
    drop(stream);
    assert_eq!(server.health().0, 200);
}

#[test]
fn shutdown_lets_an_idle_keep_alive_connection_go() {
    let mut server = Server::start();
    let mut stream = server.connect();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut BufReader::new(stream.try_clone().unwrap())).status,
        200
    );
    let start = Instant::now();
    server.stop.take().unwrap().send(()).unwrap();
    server.thread.take().unwrap().join().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(closed(&mut stream));
}

/// A body that trickles in past the request timeout gets its 408 (with the JSON error and
/// Server-Timing of every answer), and then the connection is closed; a body that keeps
/// arriving within the head timeout does not save it.
#[test]
fn a_trickled_body_gets_its_408() {
    let server = Server::start();
    let mut stream = server.connect();
    let head = predict_request(OK).replace(&format!("Length: {}", OK.len()), "Length: 500");
    let start = Instant::now();
    stream
        .write_all(&head.as_bytes()[..head.len() - OK.len()])
        .unwrap();
    let writer = stream.try_clone().unwrap();
    let trickle = thread::spawn(move || {
        let mut writer = writer;
        for byte in OK.bytes().cycle() {
            if writer.write_all(&[byte]).is_err() || start.elapsed() > Duration::from_secs(8) {
                break;
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    let response = read_response(&mut BufReader::new(stream.try_clone().unwrap()));
    let took = start.elapsed();
    assert_eq!(response.status, 408, "{}", response.body);
    assert!(
        response.body.contains("request timed out"),
        "{}",
        response.body
    );
    assert!(response.header("server-timing").is_some());
    assert!(
        took >= REQUEST_TIMEOUT && took < REQUEST_TIMEOUT + HEADER_TIMEOUT * 2,
        "{took:?}"
    );
    assert!(closed(&mut stream));
    trickle.join().unwrap();
    assert_eq!(server.health().0, 200);
}
