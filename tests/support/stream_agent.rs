//! An HTTP agent that streams its answer as NDJSON (`Content-Type: application/x-ndjson`,
//! chunked), one line at a time with a pause before each: what a real agent that reports
//! progress ("Checking pods…", then the result) looks like on the wire. Plain TCP on a free
//! loopback port, one thread per connection, stopped when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Serves every request with the same lines, each after its pause.
pub struct StreamingAgent {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StreamingAgent {
    pub fn start(lines: Vec<(Duration, String)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, calls) = (stop.clone(), calls.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let lines = lines.clone();
                            std::thread::spawn(move || serve(stream, &lines));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            addr,
            stop,
            calls,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// How many requests it received.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for StreamingAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads the request (head, then `Content-Length` bytes), then writes the lines as chunks.
fn serve(stream: TcpStream, lines: &[(Duration, String)]) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut stream = stream;
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    for (pause, line) in lines {
        std::thread::sleep(*pause);
        let chunk = format!("{line}\n");
        let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        if stream
            .write_all(framed.as_bytes())
            .and_then(|()| stream.flush())
            .is_err()
        {
            return;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
}
