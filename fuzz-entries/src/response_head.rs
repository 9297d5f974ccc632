//! Response heads: the gateway's parser and the head it writes to clients.

use gatehouse_gateway::h1::head::{self, ClientFraming, Framing};

/// Input: the first byte holds flags (bit 0: the request was HEAD; bit 1:
/// the client speaks HTTP/1.0; bit 2: the client connection closes after
/// this response; bit 3: HSTS is set), the rest is the response head.
/// When it parses, the head written to the client must parse back with
/// the body framed the same way (decoded for HTTP/1.0 clients) and at
/// most one `Content-Length`, holding the parsed value.
pub fn run(data: &[u8]) {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let is_head = flags & 1 != 0;
    let http10 = flags & 2 != 0;
    let close = flags & 4 != 0;
    let hsts = (flags & 8 != 0).then_some(&b"max-age=60"[..]);
    let mut slots = head::header_slots();
    let ours = head::parse_response(bytes, &mut slots, is_head);
    let mut plain = [httparse::EMPTY_HEADER; head::MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut plain);
    let theirs = resp.parse(bytes);
    let parsed = match (ours, &theirs) {
        (Ok(Some(parsed)), Ok(httparse::Status::Complete(n))) => {
            assert_eq!(parsed.meta.head_len, *n);
            parsed
        }
        (Ok(None), Ok(httparse::Status::Partial)) | (Err(_), _) => return,
        (ours, theirs) => panic!("disagree: ours {ours:?}, httparse {theirs:?}"),
    };
    if parsed.headers.len() + 4 > head::MAX_HEADERS {
        return;
    }
    let meta = parsed.meta;
    let dechunk = http10 && meta.framing == Framing::Chunked;
    let close = close || dechunk || meta.framing == Framing::UntilClose;
    let mut out = Vec::new();
    head::write_client_response(
        &mut out,
        &parsed,
        ClientFraming {
            close,
            http10_keep_alive: http10 && !close,
            dechunk,
            hsts,
        },
    );
    let shown = String::from_utf8_lossy(&out);
    let mut again = head::header_slots();
    let sent = match head::parse_response(&out, &mut again, is_head) {
        Ok(Some(sent)) => sent,
        other => panic!("the client head does not parse: {other:?}\n{shown}"),
    };
    assert_eq!(sent.meta.head_len, out.len(), "{shown}");
    assert_eq!(sent.meta.status, meta.status, "{shown}");
    let want = if dechunk {
        Framing::UntilClose
    } else {
        meta.framing
    };
    assert_eq!(sent.meta.framing, want, "{shown}");
    let lengths: Vec<&[u8]> = sent
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| h.value)
        .collect();
    assert!(lengths.len() <= 1, "{shown}");
    if let Framing::Length(n) = want {
        assert_eq!(lengths, [n.to_string().as_bytes()], "{shown}");
    }
}
