//! Time series in activity outputs, drawn as line charts: Prometheus range
//! queries (`chaosprometheus.probes.query_interval`, or any output in the
//! Prometheus API's `matrix` shape). Values are parsed as floats — upstream's
//! report passes them through `int()` and fails on `"0.5"`.

use serde_json::Value;

use crate::model::Item;

/// One labelled line: (seconds from the first sample, value).
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// The lines of one activity's output.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub lines: Vec<Line>,
}

impl Series {
    /// The series in an activity's output, if it is a Prometheus matrix.
    pub fn from_item(item: &Item) -> Option<Self> {
        let data = item.output.get("data")?;
        if data.get("resultType")?.as_str()? != "matrix" {
            return None;
        }
        let results = data.get("result")?.as_array()?;
        let first = results
            .iter()
            .filter_map(|r| r.get("values")?.as_array()?.first()?.get(0)?.as_f64())
            .fold(f64::INFINITY, f64::min);
        let lines: Vec<Line> = results.iter().filter_map(|r| line(r, first)).collect();
        (!lines.is_empty()).then(|| Self {
            name: item.name.clone(),
            lines,
        })
    }

    /// (min, max) over every point.
    pub fn range(&self) -> (f64, f64) {
        self.lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    }
}

fn line(r: &Value, first: f64) -> Option<Line> {
    let metric = r.get("metric").and_then(Value::as_object);
    let label = metric.map_or_else(String::new, |m| {
        let mut parts: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        parts.sort();
        parts.join(", ")
    });
    let points: Vec<(f64, f64)> = r
        .get("values")?
        .as_array()?
        .iter()
        .filter_map(|p| {
            let t = p.get(0)?.as_f64()?;
            let v = p.get(1)?;
            let v = v
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .or_else(|| v.as_f64())?;
            v.is_finite().then_some((t - first, v))
        })
        .collect();
    (!points.is_empty()).then(|| Line {
        label: if label.is_empty() {
            "value".into()
        } else {
            label
        },
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(output: Value) -> Item {
        Item {
            name: "latency".into(),
            kind: "probe".into(),
            provider: String::new(),
            background: false,
            status: Some("succeeded".into()),
            error: None,
            start: None,
            end: None,
            duration: None,
            tolerance: None,
            tolerance_met: None,
            pause_before: None,
            pause_after: None,
            output,
        }
    }

    #[test]
    fn reads_a_prometheus_matrix_with_float_strings() {
        let out = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"pod": "a", "__name__": "up"}, "values": [[100.0, "1"], [115.0, "0.5"]]},
            {"metric": {}, "values": [[105, "NaN"], [110, "2"]]}]}});
        let s = Series::from_item(&item(out)).unwrap();
        assert_eq!(s.lines[0].label, "__name__=up, pod=a");
        assert_eq!(s.lines[0].points, vec![(0.0, 1.0), (15.0, 0.5)]);
        assert_eq!(s.lines[1].label, "value");
        assert_eq!(s.lines[1].points, vec![(10.0, 2.0)], "NaN is dropped");
        assert_eq!(s.range(), (0.5, 2.0));
    }

    #[test]
    fn other_outputs_have_no_series() {
        let vector = json!({"data": {"resultType": "vector", "result": []}});
        assert!(Series::from_item(&item(vector)).is_none());
        assert!(
            Series::from_item(&item(
                json!({"data": {"resultType": "matrix", "result": []}})
            ))
            .is_none()
        );
        assert!(Series::from_item(&item(Value::Null)).is_none());
    }
}
