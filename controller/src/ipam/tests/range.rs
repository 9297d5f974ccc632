//! `addresses` entries: what parses to which range, and the exact error
//! for what does not.

use super::super::range::{AddressRange, RangeError};
use super::super::Family;
use super::ip;

#[test]
fn entries_that_parse() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("ipv4 /24", "10.0.0.0/24", "10.0.0.0", "10.0.0.255"),
        ("ipv4 /32 single", "10.0.0.7/32", "10.0.0.7", "10.0.0.7"),
        (
            "ipv4 /0 everything",
            "0.0.0.0/0",
            "0.0.0.0",
            "255.255.255.255",
        ),
        (
            "ipv4 range",
            "10.0.0.10-10.0.0.20",
            "10.0.0.10",
            "10.0.0.20",
        ),
        (
            "range of one",
            "10.0.0.10-10.0.0.10",
            "10.0.0.10",
            "10.0.0.10",
        ),
        (
            "spaces around dash (MetalLB)",
            "10.0.0.1 - 10.0.0.3",
            "10.0.0.1",
            "10.0.0.3",
        ),
        (
            "range across /24s",
            "10.0.0.250-10.0.1.5",
            "10.0.0.250",
            "10.0.1.5",
        ),
        ("ipv6 /120", "fd00::/120", "fd00::", "fd00::ff"),
        ("ipv6 /128", "fd00::1/128", "fd00::1", "fd00::1"),
        (
            "ipv6 /0",
            "::/0",
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        ("ipv6 range", "fd00::10-fd00::20", "fd00::10", "fd00::20"),
        (
            "ipv6 range across groups",
            "fd00::ffff-fd00::1:2",
            "fd00::ffff",
            "fd00::1:2",
        ),
        (
            "ipv4-mapped ipv6 is ipv6",
            "::ffff:10.0.0.0/120",
            "::ffff:10.0.0.0",
            "::ffff:10.0.0.255",
        ),
    ];
    for (name, entry, first, last) in cases {
        let r = AddressRange::parse(entry).unwrap_or_else(|e| panic!("{name}: {entry}: {e}"));
        assert_eq!((r.first(), r.last()), (ip(first), ip(last)), "{name}");
        assert_eq!(r.family(), Family::of(ip(first)), "{name}");
    }
}

#[test]
fn entries_refused_with_precise_errors() {
    use RangeError::*;
    let cases: &[(&str, &str, RangeError)] = &[
        ("empty", "", Empty),
        (
            "bare address",
            "10.0.0.1",
            MissingPrefixLength("10.0.0.1".into()),
        ),
        (
            "bare ipv6 address",
            "fd00::1",
            MissingPrefixLength("fd00::1".into()),
        ),
        (
            "not an address",
            "10.0.0/24",
            InvalidAddress("10.0.0".into()),
        ),
        (
            "octet too big",
            "10.0.0.256/32",
            InvalidAddress("10.0.0.256".into()),
        ),
        (
            "leading zero octet",
            "10.0.0.01/32",
            InvalidAddress("10.0.0.01".into()),
        ),
        (
            "hostname",
            "lb.example.com/32",
            InvalidAddress("lb.example.com".into()),
        ),
        (
            "zone index",
            "fe80::1%eth0/128",
            InvalidAddress("fe80::1%eth0".into()),
        ),
        ("empty prefix", "10.0.0.0/", InvalidPrefixLength("".into())),
        (
            "signed prefix",
            "10.0.0.0/+24",
            InvalidPrefixLength("+24".into()),
        ),
        (
            "leading zero prefix",
            "10.0.0.0/024",
            InvalidPrefixLength("024".into()),
        ),
        (
            "two slashes",
            "10.0.0.0/24/1",
            InvalidPrefixLength("24/1".into()),
        ),
        (
            "prefix too long v4",
            "10.0.0.0/33",
            PrefixTooLong {
                len: 33,
                bits: 32,
                family: Family::V4,
            },
        ),
        (
            "prefix too long v6",
            "fd00::/129",
            PrefixTooLong {
                len: 129,
                bits: 128,
                family: Family::V6,
            },
        ),
        (
            "host bits v4",
            "10.0.0.5/24",
            HostBitsSet {
                entry: "10.0.0.5/24".into(),
                network: "10.0.0.0/24".into(),
            },
        ),
        (
            "host bits v6",
            "fd00::1/120",
            HostBitsSet {
                entry: "fd00::1/120".into(),
                network: "fd00::/120".into(),
            },
        ),
        (
            "reversed range",
            "10.0.0.20-10.0.0.10",
            Reversed {
                entry: "10.0.0.20-10.0.0.10".into(),
            },
        ),
        (
            "mixed families",
            "10.0.0.1-fd00::1",
            MixedFamilies {
                entry: "10.0.0.1-fd00::1".into(),
            },
        ),
        ("range end missing", "10.0.0.1-", InvalidAddress("".into())),
        (
            "range start missing",
            "-10.0.0.1",
            InvalidAddress("".into()),
        ),
        (
            "range of CIDRs",
            "10.0.0.0/24-10.0.1.0/24",
            InvalidAddress("10.0.0.0/24".into()),
        ),
        (
            "three-part range",
            "10.0.0.1-10.0.0.2-10.0.0.3",
            InvalidAddress("10.0.0.2-10.0.0.3".into()),
        ),
        (
            "leading space",
            " 10.0.0.0/24",
            Whitespace(" 10.0.0.0/24".into()),
        ),
        (
            "trailing newline",
            "10.0.0.0/24\n",
            Whitespace("10.0.0.0/24\n".into()),
        ),
        (
            "tab at dash",
            "10.0.0.1\t-10.0.0.2",
            Whitespace("10.0.0.1\t-10.0.0.2".into()),
        ),
    ];
    for (name, entry, want) in cases {
        assert_eq!(
            AddressRange::parse(entry).as_ref(),
            Err(want),
            "{name}: {entry:?}"
        );
    }
}

#[test]
fn error_messages_name_the_fix() {
    let e = AddressRange::parse("10.0.0.5/24").unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"10.0.0.5/24\" has host bits set: the network is 10.0.0.0/24"
    );
    let e = AddressRange::parse("10.0.0.1").unwrap_err();
    assert!(e.to_string().contains("10.0.0.1/32"), "{e}");
}
