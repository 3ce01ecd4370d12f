//! An unsigned encrypted request to a Lark source gets one answer, byte for byte, whatever
//! its plaintext: bad padding, good padding that is not JSON, JSON with the wrong token, an
//! event that is not a challenge. A different answer for each is a padding oracle through
//! which anyone could decrypt a captured body without the key.

use aes::cipher::block_padding::{NoPadding, Pkcs7};
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hookrelay_tests::{Stack, create_source, json_of, request};
use serde_json::json;
use sha2::{Digest, Sha256};

const KEY: &str = "oracle-encrypt-key";

/// Lark's encryption: base64(IV ‖ AES-256-CBC(SHA-256(key), IV, plaintext)).
fn encrypt(plain: &[u8], pad: bool) -> String {
    let key = Sha256::digest(KEY.as_bytes());
    let iv = [3u8; 16];
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 16, 0);
    let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv).unwrap();
    let ct = if pad {
        enc.encrypt_padded_mut::<Pkcs7>(&mut buf, plain.len())
            .unwrap()
            .to_vec()
    } else {
        enc.encrypt_padded_mut::<NoPadding>(&mut buf, plain.len())
            .unwrap()
            .to_vec()
    };
    STANDARD.encode([iv.as_slice(), &ct].concat())
}

#[tokio::test]
async fn unsigned_encrypted_requests_get_one_identical_answer() {
    let stack = Stack::new().await;
    let source = create_source(
        &stack,
        json!({"name": "lark", "verification": {"type": "lark", "verification_token": "tok", "encrypt_key": KEY}}),
    )
    .await;
    let path = format!("/in/{source}");
    let send = |encrypted: String| {
        let stack = &stack;
        let path = path.clone();
        async move {
            let body = json!({ "encrypt": encrypted }).to_string();
            hookrelay_ingest::handle(
                &stack.ingest(),
                request(
                    "POST",
                    &path,
                    &[("content-type", "application/json")],
                    body.as_bytes(),
                ),
            )
            .await
        }
    };

    let probes = [
        // Ends in a zero byte: never valid PKCS#7.
        ("bad padding", encrypt(&[b'a'; 32], false)),
        ("not JSON", encrypt(b"good padding, not JSON", true)),
        (
            "wrong token",
            encrypt(
                br#"{"challenge":"c","token":"nope","type":"url_verification"}"#,
                true,
            ),
        ),
        (
            "not a challenge",
            encrypt(
                br#"{"schema":"2.0","header":{"token":"tok","event_type":"x"},"event":{}}"#,
                true,
            ),
        ),
    ];
    let mut answers = Vec::new();
    for (what, encrypted) in probes {
        let resp = send(encrypted).await;
        answers.push((
            what,
            resp.status(),
            resp.headers().clone(),
            resp.body().clone(),
        ));
    }
    let (_, status, headers, body) = &answers[0];
    assert_eq!(status.as_u16(), 401);
    assert_eq!(json_of_str(body)["error"]["code"], "missing_header");
    for (what, s, h, b) in &answers[1..] {
        assert_eq!(
            (s, h, b),
            (status, headers, body),
            "{what} is answered like bad padding"
        );
    }

    // The challenge itself still passes unsigned, as Lark sends it.
    let challenge = send(encrypt(
        br#"{"challenge":"ch-1","token":"tok","type":"url_verification"}"#,
        true,
    ))
    .await;
    assert_eq!(challenge.status(), 200, "{}", challenge.body());
    assert_eq!(json_of(&challenge), json!({"challenge": "ch-1"}));
}

fn json_of_str(body: &str) -> serde_json::Value {
    serde_json::from_str(body).expect("JSON")
}
