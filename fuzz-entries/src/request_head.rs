//! Request heads: the gateway's parser and the upstream head it writes.

use gatehouse_gateway::h1::head::{self, ClientInfo, Framing, HeadError};

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("192.0.2.1".into()),
        server_port: Some("8080".into()),
        tls: false,
    }
}

/// Parses a request head; when it is complete, the upstream head written
/// from it must parse back to the same request, framed the same way, and
/// keep the forwarding rules (one `Content-Length` with the parsed value,
/// no field name with `_` unless allowed, `Upgrade` only for WebSocket).
pub fn run(data: &[u8]) {
    let mut slots = head::header_slots();
    let Ok(Some((meta, headers, len))) = head::parse_request(data, &mut slots) else {
        return;
    };
    assert!(len <= data.len());
    // A head is complete only at its end.
    let mut prefix_slots = head::header_slots();
    assert!(
        matches!(
            head::parse_request(&data[..len - 1], &mut prefix_slots),
            Ok(None)
        ),
        "a prefix of a complete head is not incomplete"
    );
    // The gateway adds up to 9 fields of its own.
    if headers.len() + 9 > head::MAX_HEADERS {
        return;
    }
    for allow_underscores in [false, true] {
        let mut out = Vec::new();
        head::write_upstream_request(
            &mut out,
            &meta,
            headers,
            &client(),
            b"fuzz-id",
            allow_underscores,
        );
        let mut again = head::header_slots();
        let (sent, sent_headers, sent_len) = match head::parse_request(&out, &mut again) {
            Ok(Some(parsed)) => parsed,
            other => panic!(
                "the upstream head does not parse: {other:?}\n{}",
                String::from_utf8_lossy(&out)
            ),
        };
        let shown = String::from_utf8_lossy(&out);
        assert_eq!(sent_len, out.len(), "{shown}");
        assert_eq!(sent.framing, meta.framing, "{shown}");
        assert_eq!(
            (sent.method, &*sent.target, sent.host),
            (meta.method, &*meta.target, meta.host),
            "{shown}"
        );
        let count = |name: &str| {
            sent_headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .count()
        };
        let lengths: Vec<&[u8]> = sent_headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| h.value)
            .collect();
        match meta.framing {
            Framing::Length(n) => assert_eq!(lengths, [n.to_string().as_bytes()], "{shown}"),
            Framing::Chunked => assert!(lengths.is_empty(), "{shown}"),
            Framing::None | Framing::UntilClose => assert!(lengths.len() <= 1, "{shown}"),
        }
        for name in ["x-request-id", "x-forwarded-proto", "x-real-ip", "host"] {
            assert_eq!(count(name), 1, "{name}: {shown}");
        }
        if !allow_underscores {
            assert!(
                sent_headers.iter().all(|h| !h.name.contains('_')),
                "{shown}"
            );
        }
        for h in sent_headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("upgrade"))
        {
            assert!(h.value.eq_ignore_ascii_case(b"websocket"), "{shown}");
        }
    }
}

/// The gateway's parser (headers in uninitialised slots, framing and Host
/// checks on top) against httparse's own plain parse of the same bytes.
pub fn differential(data: &[u8]) {
    let mut slots = head::header_slots();
    let ours = head::parse_request(data, &mut slots);
    let mut plain = [httparse::EMPTY_HEADER; head::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut plain);
    let theirs = req.parse(data);
    match (&ours, &theirs) {
        (Ok(Some((meta, headers, len))), Ok(httparse::Status::Complete(n))) => {
            assert_eq!(len, n);
            assert_eq!(Some(meta.method), req.method);
            assert_eq!(headers.len(), req.headers.len());
            for (a, b) in headers.iter().zip(req.headers.iter()) {
                assert_eq!((a.name, a.value), (b.name, b.value));
            }
        }
        (Ok(None), Ok(httparse::Status::Partial)) => {}
        // Our checks refuse some well-formed heads (framing, Host, target).
        (Err(e), Ok(httparse::Status::Complete(_))) => assert!(
            !matches!(e, HeadError::Malformed(_)),
            "httparse reads a head we call malformed: {e}"
        ),
        (Err(HeadError::Malformed(_) | HeadError::TooLarge), Err(_)) => {}
        (ours, theirs) => panic!("disagree: ours {ours:?}, httparse {theirs:?}"),
    }
}
