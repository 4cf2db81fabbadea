//! Decoding of hand-made protobuf bodies: the envelope, zero values, the
//! special types and the refusals.

use serde_json::json;

use super::{base64, decode, is_protobuf};

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A varint field.
fn int(num: u64, v: i64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(num << 3, &mut out);
    varint(v as u64, &mut out);
    out
}

/// A length-delimited field.
fn ld(num: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(num << 3 | 2, &mut out);
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

fn s(num: u64, text: &str) -> Vec<u8> {
    ld(num, text.as_bytes())
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// `k8s\0` + runtime.Unknown { typeMeta, raw, contentEncoding, contentType }.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut out = b"k8s\0".to_vec();
    out.extend(ld(1, &cat(&[s(1, api_version), s(2, kind)])));
    out.extend(ld(2, raw));
    out.extend(s(3, ""));
    out.extend(s(4, ""));
    out
}

/// ObjectMeta as Go writes it: every plain field, zero or not.
fn meta(name: &str, labels: &[(&str, &str)]) -> Vec<u8> {
    let mut m = cat(&[
        s(1, name),
        s(2, ""),
        s(3, ""),
        s(4, ""),
        s(5, ""),
        s(6, ""),
        int(7, 0),
        ld(8, &[]),
    ]);
    for (k, v) in labels {
        m.extend(ld(11, &cat(&[s(1, k), s(2, v)])));
    }
    m
}

#[test]
fn decodes_a_deployment_like_kubectl_create_sends() {
    let container = cat(&[
        s(1, "nginx"),
        s(2, "nginx:1.27"),
        s(3, "sleep"),
        s(3, "10"),
        ld(
            6,
            &cat(&[s(1, ""), int(2, 0), int(3, 80), s(4, ""), s(5, "")]),
        ),
        ld(8, &[]),
        int(16, 0),
    ]);
    let pod_spec = cat(&[ld(2, &container), s(3, ""), ld(14, &[]), s(19, "")]);
    let template = cat(&[ld(1, &meta("", &[("app", "x")])), ld(2, &pod_spec)]);
    let spec = cat(&[
        int(1, 0),
        ld(2, &ld(1, &cat(&[s(1, "app"), s(2, "x")]))),
        ld(3, &template),
        ld(4, &cat(&[s(1, "")])),
        int(5, 0),
        int(7, 0),
    ]);
    let raw = cat(&[
        ld(1, &meta("x", &[("app", "x")])),
        ld(2, &spec),
        ld(3, &cat(&[int(1, 0), int(2, 0)])),
    ]);
    let obj = decode(&envelope("apps/v1", "Deployment", &raw)).unwrap();
    assert_eq!(
        obj,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "x", "labels": { "app": "x" } },
            "spec": {
                // A pointer keeps its zero: `--replicas=0` means zero.
                "replicas": 0,
                "selector": { "matchLabels": { "app": "x" } },
                "template": {
                    "metadata": { "labels": { "app": "x" } },
                    "spec": { "containers": [{
                        "name": "nginx", "image": "nginx:1.27", "command": ["sleep", "10"],
                        "ports": [{ "containerPort": 80 }],
                    }], "securityContext": {} },
                },
            },
        })
    );
}

#[test]
fn decodes_maps_bytes_int_or_string_and_times() {
    let secret = cat(&[
        ld(1, &meta("s", &[])),
        ld(2, &cat(&[s(1, "k"), ld(2, b"v\xff")])),
        s(3, "Opaque"),
    ]);
    let obj = decode(&envelope("v1", "Secret", &secret)).unwrap();
    assert_eq!(obj["data"], json!({ "k": "dv8=" }));
    assert_eq!(obj["type"], "Opaque");
    let pdb = cat(&[
        ld(1, &meta("p", &[])),
        ld(
            2,
            &cat(&[ld(3, &cat(&[int(1, 1), int(2, 0), s(3, "50%")]))]),
        ),
    ]);
    let obj = decode(&envelope("policy/v1", "PodDisruptionBudget", &pdb)).unwrap();
    assert_eq!(obj["spec"], json!({ "maxUnavailable": "50%" }));
    let svc_port = cat(&[
        int(3, 80),
        ld(4, &cat(&[int(1, 0), int(2, 8080), s(3, "")])),
    ]);
    let svc = cat(&[ld(1, &meta("web", &[])), ld(2, &ld(1, &svc_port))]);
    let obj = decode(&envelope("v1", "Service", &svc)).unwrap();
    assert_eq!(
        obj["spec"]["ports"],
        json!([{ "port": 80, "targetPort": 8080 }])
    );
    let job_status = ld(2, &int(1, 1_700_000_000));
    let job = cat(&[ld(1, &meta("j", &[])), ld(3, &job_status)]);
    let obj = decode(&envelope("batch/v1", "Job", &job)).unwrap();
    assert_eq!(obj["status"]["startTime"], "2023-11-14T22:13:20Z");
    // Negative int32 values are ten-byte varints.
    let ns = cat(&[ld(1, &cat(&[s(1, "n"), int(10, -1)]))]);
    let obj = decode(&envelope("v1", "Namespace", &ns)).unwrap();
    assert_eq!(obj["metadata"]["deletionGracePeriodSeconds"], -1);
}

#[test]
fn refuses_what_it_cannot_decode_faithfully() {
    let unknown_field = cat(&[ld(1, &meta("c", &[])), s(99, "?")]);
    let err = decode(&envelope("v1", "ConfigMap", &unknown_field)).unwrap_err();
    assert!(err.contains("field number 99 of ConfigMap"), "{err}");
    // A volume is a known field the table does not describe: refused when set.
    let pod_spec = ld(1, &s(1, "data"));
    let tmpl = ld(3, &ld(2, &pod_spec));
    let deploy = cat(&[ld(1, &meta("d", &[])), ld(2, &tmpl)]);
    let err = decode(&envelope("apps/v1", "Deployment", &deploy)).unwrap_err();
    assert!(err.contains("PodSpec.volumes"), "{err}");
    let err = decode(&envelope("v1", "Pod", &[])).unwrap_err();
    assert!(err.contains("Pod (v1)"), "{err}");
    assert!(decode(b"{}").is_err());
    let truncated = envelope("v1", "ConfigMap", &ld(1, &meta("c", &[])));
    assert!(decode(&truncated[..truncated.len() - 6]).is_err());
}

#[test]
fn helpers() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf(
        "application/vnd.kubernetes.protobuf; charset=x"
    ));
    assert!(!is_protobuf("application/json"));
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}
