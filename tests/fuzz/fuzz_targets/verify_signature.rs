//! `webhook::verify_signature` on arbitrary header, secret and body bytes: it never panics, it
//! accepts only the body's own HMAC, it accepts whatever `sign` made, and it refuses the body
//! with any byte changed.
//!
//! Input layout (the seeds in `corpus/verify_signature` follow it):
//! `[header length, 255 = no header][header][secret length][secret][flip: u16 LE][mask][body…]`.
//! A missing field reads as empty; the header bytes are read as lossy UTF-8.

#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_agent_lambda::webhook::{VerifyError, sign, verify_signature};

/// The header length byte that means "no header at all".
const NO_HEADER: u8 = u8::MAX;

fuzz_target!(|data: &[u8]| {
    let input = Input::read(data);
    let header = input.header.as_deref();
    let verdict = verify_signature(header, input.secret, input.body);

    if input.secret.is_empty() {
        assert_eq!(verdict, Err(VerifyError::EmptySecret));
        let signed = sign(input.secret, input.body);
        assert_eq!(
            verify_signature(Some(&signed), input.secret, input.body),
            Err(VerifyError::EmptySecret),
            "an empty secret must never verify"
        );
        return;
    }

    let signed = sign(input.secret, input.body);
    if verdict.is_ok() {
        // Anything accepted is the body's own HMAC, however it is spelt.
        let presented = header.map(str::trim).unwrap_or_default();
        assert!(
            presented.eq_ignore_ascii_case(&signed) && presented.starts_with("sha256="),
            "accepted {presented:?}, the signature is {signed:?}"
        );
    }

    assert_eq!(
        verify_signature(Some(&signed), input.secret, input.body),
        Ok(()),
        "the signature made by sign() must verify"
    );

    // Any changed byte of the body, anywhere, is refused.
    if let Some(last) = input.body.len().checked_sub(1) {
        for at in [0, last, usize::from(input.flip) % input.body.len()] {
            let mut tampered = input.body.to_vec();
            tampered[at] ^= input.mask;
            assert_eq!(
                verify_signature(Some(&signed), input.secret, &tampered),
                Err(VerifyError::Mismatch),
                "body changed at byte {at} (xor {:#04x}) still verifies",
                input.mask
            );
        }
        assert_eq!(
            verify_signature(Some(&signed), input.secret, &input.body[..last]),
            Err(VerifyError::Mismatch),
            "body without its last byte still verifies"
        );
    }
    let mut longer = input.body.to_vec();
    longer.push(input.mask);
    assert_eq!(
        verify_signature(Some(&signed), input.secret, &longer),
        Err(VerifyError::Mismatch),
        "body with a byte appended still verifies"
    );

    // Any changed hex digit of the signature is refused.
    let digits = signed.len() - "sha256=".len();
    let at = "sha256=".len() + usize::from(input.flip) % digits;
    let mut forged = signed.clone().into_bytes();
    forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).expect("hex is ASCII");
    assert_eq!(
        verify_signature(Some(&forged), input.secret, input.body),
        Err(VerifyError::Mismatch),
        "signature changed at char {at} still verifies"
    );
});

/// The fuzzer's bytes, cut into the verifier's three arguments and where to tamper.
struct Input<'a> {
    header: Option<String>,
    secret: &'a [u8],
    body: &'a [u8],
    /// Which byte to change (modulo the length).
    flip: u16,
    /// What to xor it with (never 0).
    mask: u8,
}

impl<'a> Input<'a> {
    fn read(mut data: &'a [u8]) -> Self {
        let header_len = take_byte(&mut data);
        let header = (header_len != NO_HEADER).then(|| {
            String::from_utf8_lossy(take(&mut data, usize::from(header_len))).into_owned()
        });
        let secret_len = take_byte(&mut data);
        let secret = take(&mut data, usize::from(secret_len));
        let flip = u16::from_le_bytes([take_byte(&mut data), take_byte(&mut data)]);
        let mask = take_byte(&mut data).max(1);
        Self {
            header,
            secret,
            body: data,
            flip,
            mask,
        }
    }
}

fn take<'a>(data: &mut &'a [u8], len: usize) -> &'a [u8] {
    let (head, rest) = data.split_at(len.min(data.len()));
    *data = rest;
    head
}

fn take_byte(data: &mut &[u8]) -> u8 {
    take(data, 1).first().copied().unwrap_or_default()
}
