//! Server-to-client WebSocket frames (RFC 6455 §5.2). Server frames are not
//! masked, so a frame is a header and the payload; building them here lets
//! a queued broadcast be written without copying it into tungstenite first.

/// Opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;

/// Appends the header of a final, unmasked frame with a payload of `len` bytes.
pub fn header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if len <= 0xffff {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends a text frame whose payload is the concatenation of `parts`.
pub fn text(out: &mut Vec<u8>, parts: &[&str]) {
    let len = parts.iter().map(|p| p.len()).sum();
    out.reserve(len + 10);
    header(out, OP_TEXT, len);
    for p in parts {
        out.extend_from_slice(p.as_bytes());
    }
}

/// Appends a close frame with `code` and `reason`.
pub fn close(out: &mut Vec<u8>, code: u16, reason: &str) {
    header(out, OP_CLOSE, 2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use tungstenite::protocol::Role;
    use tungstenite::{Message, WebSocket};

    #[test]
    fn headers_use_the_shortest_length_form() {
        let mut b = Vec::new();
        header(&mut b, OP_TEXT, 5);
        assert_eq!(b, [0x81, 5]);
        b.clear();
        header(&mut b, OP_TEXT, 300);
        assert_eq!(b, [0x81, 126, 1, 44]);
        b.clear();
        header(&mut b, OP_TEXT, 70_000);
        assert_eq!(b, [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn frames_decode_with_tungstenite() {
        // Our frames, read back by tungstenite as a client.
        let mut bytes = Vec::new();
        text(&mut bytes, &["hello"]);
        text(&mut bytes, &["[", "1,2", "]"]);
        let long = "x".repeat(70_000);
        text(&mut bytes, &[&long]);
        close(&mut bytes, 1001, "bye");
        let mut ws = WebSocket::from_raw_socket(io::Cursor::new(bytes), Role::Client, None);
        assert_eq!(ws.read().unwrap(), Message::Text("hello".into()));
        assert_eq!(ws.read().unwrap(), Message::Text("[1,2]".into()));
        assert_eq!(ws.read().unwrap(), Message::Text(long.as_str().into()));
        match ws.read().unwrap() {
            Message::Close(Some(f)) => {
                assert_eq!((u16::from(f.code), f.reason.as_str()), (1001, "bye"))
            }
            other => panic!("{other:?}"),
        }
    }
}
