//! Writes a small lake of synthetic EC2-like and custom metrics to a folder, and prints the
//! size of one `metrics_1m` object under each codec.
//!
//! ```text
//! cargo run -p cwms-parquet --example sample_lake -- /tmp/cwms-sample-lake
//! ```
//!
//! The lake is meant for independent readers (pyarrow, DuckDB) to check types, partition
//! columns and values; the numbers in it are deterministic.

use std::path::Path;

use cwms_merge::{Partition, merge_into, rollup_hourly};
use cwms_model::{Datum, OwnedDatum};
use cwms_parquet::{Codec, LakeObject, WriteOptions, encode};

/// 2026-11-26T07:00:00Z.
const START_MS: i64 = 1_795_676_400_000;

/// A deterministic pseudo-random sequence (64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `instances` EC2 instances reporting four metrics every minute for `minutes` minutes from
/// `START_MS`, in two accounts; CPU carries percentiles. Values look like CloudWatch's: CPU is a
/// full-precision percentage, byte and operation counts are integers, status checks are 0.
fn ec2(instances: usize, minutes: i64, rng: &mut Lcg) -> Vec<OwnedDatum> {
    let mut out = Vec::new();
    for minute in 0..minutes {
        for instance in 0..instances {
            let mut dimensions =
                vec![("InstanceId".into(), format!("i-0{:016x}", (instance as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 4).into())];
            if instance % 3 == 0 {
                dimensions.insert(0, ("AutoScalingGroupName".into(), format!("web-asg-{}", instance % 4).into()));
            }
            let base = Datum {
                metric_stream_name: Some("cwms-stream".into()),
                account_id: if instance % 2 == 0 { "111122223333".into() } else { "444455556666".into() },
                region: "us-east-1".into(),
                namespace: "AWS/EC2".into(),
                metric_name: "".into(),
                dimensions,
                timestamp_ms: START_MS + minute * 60_000,
                unit: "".into(),
                count: 1.0,
                sum: 0.0,
                max: 0.0,
                min: 0.0,
                stats: vec![],
            };
            let cpu = 5.0 + 60.0 * rng.unit();
            let (low, high) = (cpu * (0.5 + 0.5 * rng.unit()), (cpu * (1.0 + rng.unit())).min(100.0));
            out.push(Datum {
                metric_name: "CPUUtilization".into(),
                unit: "Percent".into(),
                count: 5.0,
                sum: cpu * 5.0,
                max: high,
                min: low,
                stats: vec![("p50".into(), cpu), ("p90".into(), (cpu + high) / 2.0), ("p99".into(), high * 0.99)],
                ..base.clone()
            });
            let bytes = (1e6 * rng.unit() * rng.unit()).round();
            out.push(Datum {
                metric_name: "NetworkIn".into(),
                unit: "Bytes".into(),
                count: 5.0,
                sum: bytes * 5.0,
                max: (bytes * 1.7).round(),
                min: (bytes * 0.2).round(),
                ..base.clone()
            });
            let ops = (200.0 * rng.unit()).round();
            out.push(Datum { metric_name: "DiskWriteOps".into(), unit: "Count".into(), sum: ops, max: ops, min: ops, ..base.clone() });
            out.push(Datum { metric_name: "StatusCheckFailed".into(), unit: "Count".into(), ..base });
        }
    }
    out
}

/// An application namespace with characters Hive escapes (`#`, `:`, `/`) and a space.
fn custom(minutes: i64, rng: &mut Lcg) -> Vec<OwnedDatum> {
    let mut out = Vec::new();
    for minute in 0..minutes {
        for (route, status) in [("/orders", "200"), ("/orders", "500"), ("/cart=x,y", "200")] {
            let latency = 20.0 + 200.0 * rng.unit();
            out.push(Datum {
                metric_stream_name: None,
                account_id: "111122223333".into(),
                region: "eu-west-1".into(),
                namespace: "Shop#App:v1/Orders x".into(),
                metric_name: "Latency".into(),
                dimensions: vec![("Route".into(), route.into()), ("Status".into(), status.into())],
                timestamp_ms: START_MS + minute * 60_000 + 17,
                unit: "Milliseconds".into(),
                count: 12.0,
                sum: latency * 12.0,
                max: latency * 3.0,
                min: latency / 2.0,
                stats: vec![("TM(25%:75%)".into(), latency * 0.9), ("p99.9".into(), latency * 2.9)],
            });
        }
    }
    out
}

fn write(root: &Path, object: &LakeObject, partition: &Partition, options: &WriteOptions) -> Result<usize, Box<dyn std::error::Error>> {
    let bytes = encode(partition, object, options)?;
    let path = root.join(object.key());
    std::fs::create_dir_all(path.parent().ok_or("object key without folder")?)?;
    std::fs::write(&path, &bytes)?;
    Ok(bytes.len())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args().nth(1).ok_or("usage: sample_lake FOLDER")?;
    let root = Path::new(&root);
    let mut rng = Lcg(2026);
    let options = WriteOptions::default();

    for datums in [ec2(50, 120, &mut rng), custom(120, &mut rng)] {
        // Group by lake object, as the compactor does, then write each hour and the day's rollup.
        let mut by_object: std::collections::BTreeMap<LakeObject, Vec<OwnedDatum>> = Default::default();
        for datum in datums {
            by_object.entry(LakeObject::minutes_at(&datum.namespace, datum.timestamp_ms)?).or_default().push(datum);
        }
        let mut day = Partition::new();
        let mut day_object = None;
        for (object, datums) in &by_object {
            let mut partition = Partition::new();
            merge_into(&mut partition, datums);
            let size = write(root, object, &partition, &options)?;
            println!("{:>8} bytes {:>6} rows  {}", size, partition.len(), object.key());
            day.merge(&partition);
            day_object = Some(object.day());
        }
        if let Some(object) = day_object {
            let rollup = rollup_hourly(&day);
            let size = write(root, &object, &rollup, &options)?;
            println!("{:>8} bytes {:>6} rows  {}", size, rollup.len(), object.key());
        }
    }

    // Codec comparison on one hour of the EC2 sample.
    let mut rng = Lcg(2026);
    let mut hour = Partition::new();
    merge_into(&mut hour, &ec2(50, 60, &mut rng));
    let object = LakeObject::minutes_at("AWS/EC2", START_MS)?;
    println!("\none metrics_1m object, {} rows:", hour.len());
    for codec in ["uncompressed", "snappy", "zstd(1)", "zstd(3)", "zstd(9)", "zstd(19)"] {
        let options = WriteOptions { codec: codec.parse::<Codec>()?, ..WriteOptions::default() };
        let size = encode(&hour, &object, &options)?.len();
        println!("{codec:>14}: {size:>8} bytes  {:>6.2} bytes/row", size as f64 / hour.len() as f64);
    }
    Ok(())
}
