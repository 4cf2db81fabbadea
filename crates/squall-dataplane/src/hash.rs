//! kube-proxy's deterministic chain names. iptables chains are
//! `KUBE-SVC-`/`KUBE-SEP-`… + the first 16 characters of
//! base32(sha256(…)); nftables chains carry the first 8. Recomputing them
//! lets the parsers and the stale-rule detector tie a chain to its Service
//! port even when kube-proxy dropped the comments (more than 1,000
//! endpoints). SHA-256 and base32 are implemented here (a few dozen lines,
//! checked against published vectors) instead of pulling in crypto crates.

const K: [u32; 64] = [
    0x428a_2f98,
    0x7137_4491,
    0xb5c0_fbcf,
    0xe9b5_dba5,
    0x3956_c25b,
    0x59f1_11f1,
    0x923f_82a4,
    0xab1c_5ed5,
    0xd807_aa98,
    0x1283_5b01,
    0x2431_85be,
    0x550c_7dc3,
    0x72be_5d74,
    0x80de_b1fe,
    0x9bdc_06a7,
    0xc19b_f174,
    0xe49b_69c1,
    0xefbe_4786,
    0x0fc1_9dc6,
    0x240c_a1cc,
    0x2de9_2c6f,
    0x4a74_84aa,
    0x5cb0_a9dc,
    0x76f9_88da,
    0x983e_5152,
    0xa831_c66d,
    0xb003_27c8,
    0xbf59_7fc7,
    0xc6e0_0bf3,
    0xd5a7_9147,
    0x06ca_6351,
    0x1429_2967,
    0x27b7_0a85,
    0x2e1b_2138,
    0x4d2c_6dfc,
    0x5338_0d13,
    0x650a_7354,
    0x766a_0abb,
    0x81c2_c92e,
    0x9272_2c85,
    0xa2bf_e8a1,
    0xa81a_664b,
    0xc24b_8b70,
    0xc76c_51a3,
    0xd192_e819,
    0xd699_0624,
    0xf40e_3585,
    0x106a_a070,
    0x19a4_c116,
    0x1e37_6c08,
    0x2748_774c,
    0x34b0_bcb5,
    0x391c_0cb3,
    0x4ed8_aa4a,
    0x5b9c_ca4f,
    0x682e_6ff3,
    0x748f_82ee,
    0x78a5_636f,
    0x84c8_7814,
    0x8cc7_0208,
    0x90be_fffa,
    0xa450_6ceb,
    0xbef9_a3f7,
    0xc671_78f2,
];

/// SHA-256 of `data` (FIPS 180-4).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        compress(&mut h, block);
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn compress(h: &mut [u32; 8], block: &[u8]) {
    let mut w = [0u32; 64];
    for (i, b) in block.chunks_exact(4).enumerate().take(16) {
        w[i] = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = *h;
    for i in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = hh
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(K[i])
            .wrapping_add(w[i]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        hh = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (slot, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
        *slot = slot.wrapping_add(v);
    }
}

/// RFC 4648 base32 (standard alphabet, with `=` padding), as Go's
/// `base32.StdEncoding` which kube-proxy uses.
pub fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                let idx = usize::try_from((bits >> (35 - i * 5)) & 31).unwrap_or(0);
                out.push(char::from(ALPHABET[idx]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hash_prefix(input: &str, len: usize) -> String {
    base32(&sha256(input.as_bytes()))
        .chars()
        .take(len)
        .collect()
}

/// `ns/name:port` — or `ns/name` for an unnamed port, as current kube-proxy
/// renders it (older releases kept the trailing colon; see
/// [`service_port_name_legacy`]).
pub fn service_port_name(namespace: &str, name: &str, port_name: &str) -> String {
    if port_name.is_empty() {
        format!("{namespace}/{name}")
    } else {
        format!("{namespace}/{name}:{port_name}")
    }
}

/// Pre-`fmtPortName` rendering: always `ns/name:port`, even when unnamed.
pub fn service_port_name_legacy(namespace: &str, name: &str, port_name: &str) -> String {
    format!("{namespace}/{name}:{port_name}")
}

/// The 16-character suffix shared by `KUBE-SVC-`, `KUBE-SVL-`, `KUBE-EXT-`
/// and `KUBE-FW-` chains of one service port. `protocol` is lowercased.
pub fn service_chain_suffix(spn: &str, protocol: &str) -> String {
    hash_prefix(&format!("{spn}{}", protocol.to_ascii_lowercase()), 16)
}

/// `KUBE-SEP-…` for one endpoint; `endpoint` is `ip:port` (`[ip6]:port`).
pub fn endpoint_chain(spn: &str, protocol: &str, endpoint: &str) -> String {
    let input = format!("{spn}{}{endpoint}", protocol.to_ascii_lowercase());
    format!("KUBE-SEP-{}", hash_prefix(&input, 16))
}

/// nftables per-service chain: `service-<H8>-ns/name/proto/port`.
pub fn nft_service_chain(namespace: &str, name: &str, protocol: &str, port_name: &str) -> String {
    let base = format!(
        "{namespace}/{name}/{}/{port_name}",
        protocol.to_ascii_lowercase()
    );
    format!("service-{}-{base}", hash_prefix(&base, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_matches_published_vectors() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(
            hex(&sha256(long)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ] {
            assert_eq!(base32(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn chain_names_match_real_kube_proxy_output() {
        let k = service_port_name("default", "kubernetes", "https");
        assert_eq!(service_chain_suffix(&k, "TCP"), "NPX46M4PTMTKRN6Y");
        let dns = service_port_name("kube-system", "kube-dns", "dns");
        assert_eq!(service_chain_suffix(&dns, "udp"), "TCOU7JCQXEZGVUNU");
        let dns_tcp = service_port_name("kube-system", "kube-dns", "dns-tcp");
        assert_eq!(service_chain_suffix(&dns_tcp, "tcp"), "ERIFXISQEP7F7OF4");
        assert_eq!(
            endpoint_chain(&k, "tcp", "172.18.0.2:6443"),
            "KUBE-SEP-V2PECCYPB6X2GSCW"
        );
        let svc1 = service_port_name("ns1", "svc1", "p80");
        assert_eq!(service_chain_suffix(&svc1, "tcp"), "XPGD46QRK7WJZT7O");
        assert_eq!(
            endpoint_chain(&svc1, "tcp", "10.180.0.1:80"),
            "KUBE-SEP-SXIVWICOYRO3J4NJ"
        );
        let unnamed = service_port_name_legacy("default", "nginx", "");
        assert_eq!(service_chain_suffix(&unnamed, "tcp"), "4N57TFCL4MD7ZTDA");
    }

    #[test]
    fn nft_chain_names_match_real_output() {
        assert_eq!(
            nft_service_chain("default", "kubernetes", "TCP", "https"),
            "service-2QRHZV4L-default/kubernetes/tcp/https"
        );
        assert_eq!(
            nft_service_chain("kube-system", "kube-dns", "udp", "dns"),
            "service-FY5PMXPG-kube-system/kube-dns/udp/dns"
        );
    }
}
