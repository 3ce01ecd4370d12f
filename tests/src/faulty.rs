//! A receiver that misbehaves on purpose, at the TCP level: 500s, hung requests that run
//! into the client's timeout, connections dropped without an answer, slow answers. It is
//! raw HTTP/1.1 over a socket so that it can fail in ways a framework would not let it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub error: f64,
    pub hang: f64,
    pub drop: f64,
    pub slow: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Ok,
    Slow,
    Error,
    Hang,
    Drop,
}

/// One request as it arrived, and how it was answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub webhook_id: String,
    pub body: Vec<u8>,
    pub fate: Fate,
}

#[derive(Clone)]
pub struct FaultyReceiver {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FaultyReceiver {
    pub async fn start(faults: Faults, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let shared = seen.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (seen, rng) = (shared.clone(), rng.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, faults, seen, rng).await;
                });
            }
        });
        Self {
            url: format!("http://{addr}/hook"),
            seen,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// Webhook ids answered with a 2xx: delivered.
    pub fn delivered(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for s in self.seen() {
            if matches!(s.fate, Fate::Ok | Fate::Slow) {
                *m.entry(s.webhook_id).or_default() += 1;
            }
        }
        m
    }
}

async fn serve(
    sock: TcpStream,
    faults: Faults,
    seen: Arc<Mutex<Vec<Seen>>>,
    rng: Arc<Mutex<StdRng>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(sock);
    loop {
        let mut content_length = 0usize;
        let mut webhook_id = String::new();
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => content_length = v.trim().parse().unwrap_or(0),
                    "webhook-id" => webhook_id = v.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; content_length];
        reader.read_exact(&mut body).await?;
        let x: f64 = rng.lock().expect("lock").random();
        let fate = [
            (faults.error, Fate::Error),
            (faults.hang, Fate::Hang),
            (faults.drop, Fate::Drop),
            (faults.slow, Fate::Slow),
        ]
        .iter()
        .scan(0.0, |edge, (p, f)| {
            *edge += p;
            Some((*edge, *f))
        })
        .find(|(edge, _)| x < *edge)
        .map_or(Fate::Ok, |(_, f)| f);
        seen.lock().expect("lock").push(Seen {
            webhook_id,
            body,
            fate,
        });
        let sock = reader.get_mut();
        match fate {
            Fate::Ok => {
                sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await?
            }
            Fate::Slow => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await?
            }
            Fate::Error => {
                sock.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops",
                )
                .await?
            }
            Fate::Hang => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                return Ok(());
            }
            Fate::Drop => return Ok(()),
        }
    }
}
