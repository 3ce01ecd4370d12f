//! A TCP proxy in front of the local AWS endpoint that holds each request for a while, as a
//! distant or loaded AWS would: tests of work bounded by a deadline need every request to
//! take measurable time, and the emulator on loopback answers in a few milliseconds.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts a proxy to `upstream` (`http://host:port`) that delays every chunk a client sends
/// by `delay`. Answers its URL; it runs until the test's runtime ends.
pub async fn proxy(upstream: &str, delay: Duration) -> String {
    let target = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&target).await else {
                    return;
                };
                let (mut client_r, mut client_w) = client.into_split();
                let (mut server_r, mut server_w) = server.into_split();
                let upstream = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match client_r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                tokio::time::sleep(delay).await;
                                if server_w.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = server_w.shutdown().await;
                };
                let downstream = async move {
                    let _ = tokio::io::copy(&mut server_r, &mut client_w).await;
                    let _ = client_w.shutdown().await;
                };
                tokio::join!(upstream, downstream);
            });
        }
    });
    url
}
