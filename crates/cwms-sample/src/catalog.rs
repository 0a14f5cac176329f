//! The series a sample streams: real namespaces, metric names, units and dimension names, with
//! made-up but plausible resources (instances, functions, APIs, tables, endpoints).
//!
//! Each namespace lists its resources ("entities") one after another: entity 0 is usually the
//! account-level aggregate with no dimensions at all, later ones are single resources, and every
//! entity contributes the few metrics CloudWatch publishes for such a resource. A namespace's
//! catalog is drawn from its own random stream, so choosing fewer namespaces or fewer series
//! never changes the series that remain.

use std::collections::HashSet;

use crate::draw::{Draw, stream};

/// The namespaces a sample can hold, in the order series are interleaved.
pub const NAMESPACES: [&str; 5] = ["AWS/EC2", "AWS/Lambda", "AWS/ApiGateway", "AWS/DynamoDB", "CloudWatchApiCourse/Performance"];

/// The most dimensions CloudWatch allows on one metric.
pub const MAX_DIMENSIONS: usize = 30;

/// The namespaces of the awkward series ([`crate::Spec::awkward_names`]): characters that Hive
/// escapes in a partition folder (`/`, `:`, `=`, `\`) and characters it leaves alone (space,
/// `,`, non-ASCII), all of which every reader must give back unchanged.
pub const AWKWARD_NAMESPACES: [&str; 3] = ["My App/Prod:v1", "Team=Ops,EU\\Batch", "Ünïcode ☃/Café"];

/// The catalog index of the awkward series, after those of [`NAMESPACES`].
pub(crate) const AWKWARD: usize = NAMESPACES.len();

/// One metric of one resource: what every datum of the series shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub namespace: &'static str,
    pub metric_name: &'static str,
    /// One of CloudWatch's unit names.
    pub unit: &'static str,
    /// Dimension name and value pairs, sorted by name (as the decoder normalizes them).
    pub dimensions: Vec<(String, String)>,
    /// The additional statistics the stream is configured to send for this series, in the order
    /// CloudWatch writes them (empty for most series).
    pub statistics: Vec<&'static str>,
    pub(crate) model: Model,
    /// The stream of the entity's request traffic, shared by the entity's request metrics so
    /// that, as in CloudWatch, a function's `Invocations`, `Errors` and `Duration` have the same
    /// sample count in the same minute.
    pub(crate) traffic: Option<Traffic>,
    /// The stream of this series' own values.
    pub(crate) values_stream: u64,
}

/// How many requests an entity serves per minute, on average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Traffic {
    pub stream: u64,
    pub rate: f64,
}

/// How the values of a series behave; see `values.rs`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Model {
    /// A utilization in percent, sampled `sources` times a minute (one per instance).
    Percent { sources: u32, center: f64 },
    /// A non-negative whole-number gauge (bytes, operations, concurrency), `sources` samples a minute.
    Gauge { sources: u32, center: f64 },
    /// A health check: `sources` samples of 0, rarely 1.
    Status { sources: u32 },
    /// One sample of 1 per request (`Invocations`, `Count`, `RequestCount`).
    Events,
    /// One sample per request, 1 when the request failed in this way and 0 otherwise.
    Flags { share: f64 },
    /// One sample per request: a right-skewed latency in milliseconds around `median`.
    Latency { median: f64, skew: u32 },
    /// Capacity units consumed per request, in steps of `step`.
    Capacity { step: f64 },
}

/// The additional statistics cwms can generate: percentiles and trimmed means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Statistic {
    Percentile(f64),
    TrimmedMean(f64, f64),
}

/// The statistic named `name`, for the names the catalog uses.
pub(crate) fn statistic(name: &str) -> Statistic {
    match name {
        "p50" => Statistic::Percentile(0.5),
        "p90" => Statistic::Percentile(0.9),
        "p95" => Statistic::Percentile(0.95),
        "p99" => Statistic::Percentile(0.99),
        "p99.9" => Statistic::Percentile(0.999),
        "TM(10%:90%)" => Statistic::TrimmedMean(0.1, 0.9),
        _ => unreachable!("statistic {name} is not in the catalog"),
    }
}

/// A metric of an entity before its dimensions are attached.
struct Metric {
    name: &'static str,
    unit: &'static str,
    model: Model,
    /// Percentiles the stream may be configured to add for this metric.
    percentiles: &'static [&'static str],
    /// Where the sample count comes from, for metrics with one sample per request.
    requests: Requests,
}

/// Whose requests a per-request metric counts.
#[derive(Clone, Copy)]
enum Requests {
    /// Not a per-request metric: the sample count is the number of sources.
    None,
    /// The entity's requests, shared with its other per-request metrics.
    Entity,
    /// Requests of its own, at this rate per minute (one operation of a table, say).
    Own(f64),
}

impl Metric {
    fn new(name: &'static str, unit: &'static str, model: Model) -> Metric {
        Metric { name, unit, model, percentiles: &[], requests: Requests::None }
    }

    fn per_request(mut self) -> Metric {
        self.requests = Requests::Entity;
        self
    }

    fn own_requests(mut self, rate: f64) -> Metric {
        self.requests = Requests::Own(rate);
        self
    }

    fn with_percentiles(mut self, names: &'static [&'static str]) -> Metric {
        self.percentiles = names;
        self
    }
}

/// The series of a spec's namespaces, `total` of them, interleaved round-robin by namespace so
/// that any prefix mixes every namespace. `namespaces` holds indexes into [`NAMESPACES`], or
/// [`AWKWARD`] for the awkward series (which spread over [`AWKWARD_NAMESPACES`]).
pub(crate) fn build(namespaces: &[usize], total: usize, seed: u64, percentiles_share: f64) -> Vec<Series> {
    let n = namespaces.len();
    let per_namespace: Vec<Vec<Series>> = namespaces
        .iter()
        .enumerate()
        .map(|(position, &ns)| {
            let quota = total / n + usize::from(position < total % n);
            namespace_series(ns, quota, seed, percentiles_share)
        })
        .collect();
    let mut iters: Vec<_> = per_namespace.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        for it in &mut iters {
            out.extend(it.next());
        }
    }
    out
}

/// The first `quota` series of one namespace.
fn namespace_series(ns: usize, quota: usize, seed: u64, percentiles_share: f64) -> Vec<Series> {
    let mut draw = Draw::new(seed, stream::CATALOG + ns as u64);
    let mut out = Vec::with_capacity(quota);
    let mut seen = HashSet::new();
    let mut entity = 0u64;
    while out.len() < quota {
        let (dimensions, metrics, rate) = match ns {
            0 => ec2(entity, &mut draw),
            1 => lambda(entity, &mut draw),
            2 => api_gateway(entity, &mut draw),
            3 => dynamodb(entity, &mut draw),
            AWKWARD => awkward(entity, &mut draw),
            _ => custom(entity, &mut draw),
        };
        let namespace =
            if ns == AWKWARD { AWKWARD_NAMESPACES[(entity % AWKWARD_NAMESPACES.len() as u64) as usize] } else { NAMESPACES[ns] };
        let traffic = Traffic { stream: stream::TRAFFIC | (ns as u64) << 32 | entity, rate };
        for (metric, extra) in metrics {
            if out.len() == quota {
                break;
            }
            let mut dims: Vec<(String, String)> = dimensions.iter().chain(&extra).cloned().collect();
            dims.sort_by(|a, b| a.0.cmp(&b.0));
            // Made-up identifiers are random, so guard against the (astronomically unlikely)
            // repeat of a whole series key rather than emit two series that are one.
            if !seen.insert((namespace, metric.name, dims.clone())) {
                continue;
            }
            // Always draw, so the catalog does not shift when the share changes.
            let with_percentiles = draw.chance(percentiles_share) && !metric.percentiles.is_empty();
            let index = out.len() as u64;
            let traffic = match metric.requests {
                Requests::None => None,
                Requests::Entity => Some(traffic),
                Requests::Own(rate) => Some(Traffic { stream: stream::TRAFFIC | (ns as u64) << 32 | 1 << 31 | index, rate }),
            };
            out.push(Series {
                namespace,
                metric_name: metric.name,
                unit: metric.unit,
                dimensions: dims,
                statistics: if with_percentiles { metric.percentiles.to_vec() } else { Vec::new() },
                model: metric.model,
                traffic,
                values_stream: stream::VALUES | (ns as u64) << 32 | index,
            });
        }
        entity += 1;
    }
    out
}

type Dimensions = Vec<(String, String)>;
/// An entity: its dimensions, its metrics (each with any dimensions of its own), its request rate.
type Entity = (Dimensions, Vec<(Metric, Dimensions)>, f64);

fn dim(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

/// Splits `index` into digits of the given radices (least significant first); what is left over
/// becomes a numeric suffix, so that every index names a different combination.
fn mixed_radix(mut index: u64, radices: &[usize]) -> (Vec<usize>, u64) {
    let digits = radices
        .iter()
        .map(|&r| {
            let d = (index % r as u64) as usize;
            index /= r as u64;
            d
        })
        .collect();
    (digits, index)
}

/// `base`, or `base-2`, `base-3`, ... once the name lists are used up.
fn suffixed(base: &str, overflow: u64) -> String {
    if overflow == 0 { base.to_owned() } else { format!("{base}-{}", overflow + 1) }
}

/// Requests per minute: a few per minute up to thousands, spread over orders of magnitude.
fn request_rate(draw: &mut Draw) -> f64 {
    const RATES: [f64; 7] = [3.0, 12.0, 40.0, 150.0, 600.0, 2_500.0, 9_000.0];
    *draw.pick(&RATES) * draw.uniform(0.7, 1.3)
}

/// Milliseconds: a median latency typical of the kind of resource.
fn median_ms(draw: &mut Draw, choices: &[f64]) -> f64 {
    *draw.pick(choices) * draw.uniform(0.8, 1.25)
}

const INSTANCE_TYPES: [&str; 7] = ["t3.medium", "t3.large", "m5.large", "m6i.xlarge", "c6g.xlarge", "r6i.2xlarge", "t4g.small"];
const AUTO_SCALING_GROUPS: [&str; 5] = ["web-prod-asg", "api-prod-asg", "worker-prod-asg", "batch-spot-asg", "web-staging-asg"];

fn ec2_metrics(draw: &mut Draw, sources: u32) -> Vec<(Metric, Dimensions)> {
    let cpu = draw.uniform(3.0, 65.0);
    let network = *draw.pick(&[20_000.0, 500_000.0, 3_000_000.0, 40_000_000.0]) * draw.uniform(0.5, 1.5);
    let disk = *draw.pick(&[0.0, 4.0, 60.0, 400.0]) * draw.uniform(0.5, 1.5);
    vec![
        (Metric::new("CPUUtilization", "Percent", Model::Percent { sources, center: cpu }).with_percentiles(&["p90", "p99"]), vec![]),
        (Metric::new("NetworkIn", "Bytes", Model::Gauge { sources, center: network }), vec![]),
        (Metric::new("DiskWriteOps", "Count", Model::Gauge { sources, center: disk }), vec![]),
        (Metric::new("StatusCheckFailed", "Count", Model::Status { sources }), vec![]),
    ]
}

/// AWS/EC2: entity 0 is the "across all instances" aggregate (no dimensions); then instances,
/// every third one also carrying the CloudWatch agent's appended dimensions.
fn ec2(entity: u64, draw: &mut Draw) -> Entity {
    if entity == 0 {
        let sources = draw.between(8, 60) as u32;
        return (vec![], ec2_metrics(draw, sources), 0.0);
    }
    let instance = format!("i-0{}", draw.hex(16));
    let mut dims = vec![dim("InstanceId", instance)];
    if entity % 3 == 2 {
        dims.push(dim("AutoScalingGroupName", *draw.pick(&AUTO_SCALING_GROUPS)));
        dims.push(dim("ImageId", format!("ami-0{}", draw.hex(16))));
        dims.push(dim("InstanceType", *draw.pick(&INSTANCE_TYPES)));
    }
    (dims, ec2_metrics(draw, 1), 0.0)
}

const APPS: [&str; 10] =
    ["orders", "payments", "inventory", "users", "notifications", "search", "checkout", "thumbnails", "reports", "auth"];
const ACTIONS: [&str; 7] = ["api", "worker", "processor", "handler", "scheduler", "authorizer", "stream-consumer"];
const ALIASES: [&str; 3] = ["live", "prod", "canary"];

fn lambda_metrics(draw: &mut Draw) -> Vec<(Metric, Dimensions)> {
    let median = median_ms(draw, &[4.0, 25.0, 120.0, 900.0]);
    let skew = draw.between(3, 5) as u32;
    vec![
        (Metric::new("Invocations", "Count", Model::Events).per_request(), vec![]),
        (
            Metric::new("Duration", "Milliseconds", Model::Latency { median, skew }).per_request().with_percentiles(&["p50", "p90", "p99"]),
            vec![],
        ),
        (Metric::new("Errors", "Count", Model::Flags { share: draw.uniform(0.0, 0.02) }).per_request(), vec![]),
        (Metric::new("Throttles", "Count", Model::Flags { share: draw.uniform(0.0, 0.004) }).per_request(), vec![]),
    ]
}

/// AWS/Lambda: entity 0 is the account-level view (no dimensions, plus `ConcurrentExecutions`);
/// then functions, every fourth one by alias (`Resource` = `function:alias`).
fn lambda(entity: u64, draw: &mut Draw) -> Entity {
    if entity == 0 {
        let mut metrics = lambda_metrics(draw);
        let concurrency = draw.uniform(5.0, 200.0);
        metrics.push((Metric::new("ConcurrentExecutions", "Count", Model::Gauge { sources: 1, center: concurrency }), vec![]));
        return (vec![], metrics, request_rate(draw) * 20.0);
    }
    let (d, overflow) = mixed_radix(entity - 1, &[APPS.len(), ACTIONS.len()]);
    let function = suffixed(&format!("{}-{}", APPS[d[0]], ACTIONS[d[1]]), overflow);
    let mut dims = vec![dim("FunctionName", function.clone())];
    if entity % 4 == 3 {
        dims.push(dim("Resource", format!("{function}:{}", draw.pick(&ALIASES))));
    }
    let rate = request_rate(draw);
    (dims, lambda_metrics(draw), rate)
}

const APIS: [&str; 6] = ["PetStore", "orders-api", "payments-api", "users-api", "catalog-api", "internal-admin-api"];
const STAGES: [&str; 3] = ["prod", "staging", "dev"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const RESOURCES: [&str; 7] = ["/pets", "/pets/{petId}", "/orders", "/orders/{orderId}", "/users/{userId}/cart", "/health", "/search"];

/// AWS/ApiGateway: APIs by name, by stage, and by method and resource (never without dimensions).
fn api_gateway(entity: u64, draw: &mut Draw) -> Entity {
    let index = entity / 3;
    let dims = match entity % 3 {
        0 => {
            let (d, overflow) = mixed_radix(index, &[APIS.len()]);
            vec![dim("ApiName", suffixed(APIS[d[0]], overflow))]
        }
        1 => {
            let (d, overflow) = mixed_radix(index, &[APIS.len(), STAGES.len()]);
            vec![dim("ApiName", suffixed(APIS[d[0]], overflow)), dim("Stage", STAGES[d[1]])]
        }
        _ => {
            let (d, overflow) = mixed_radix(index, &[APIS.len(), RESOURCES.len(), METHODS.len(), STAGES.len()]);
            vec![
                dim("ApiName", suffixed(APIS[d[0]], overflow)),
                dim("Resource", RESOURCES[d[1]]),
                dim("Method", METHODS[d[2]]),
                dim("Stage", STAGES[d[3]]),
            ]
        }
    };
    let median = median_ms(draw, &[15.0, 45.0, 150.0]);
    let metrics = vec![
        (Metric::new("Count", "Count", Model::Events).per_request(), vec![]),
        (
            Metric::new("Latency", "Milliseconds", Model::Latency { median, skew: draw.between(3, 5) as u32 })
                .per_request()
                .with_percentiles(&["p99", "p99.9", "TM(10%:90%)"]),
            vec![],
        ),
        (Metric::new("4XXError", "Count", Model::Flags { share: draw.uniform(0.0, 0.05) }).per_request(), vec![]),
        (Metric::new("5XXError", "Count", Model::Flags { share: draw.uniform(0.0, 0.01) }).per_request(), vec![]),
    ];
    (dims, metrics, request_rate(draw))
}

const TABLES: [&str; 8] = ["Orders", "Customers", "Sessions", "Inventory", "Payments", "AuditLog", "Carts", "FeatureFlags"];
const OPERATIONS: [&str; 3] = ["GetItem", "PutItem", "Query"];

/// AWS/DynamoDB: entity 0 is the account (no dimensions); then tables, with per-operation latency.
fn dynamodb(entity: u64, draw: &mut Draw) -> Entity {
    if entity == 0 {
        let metrics = ["AccountProvisionedReadCapacityUtilization", "AccountProvisionedWriteCapacityUtilization"]
            .into_iter()
            .map(|name| (Metric::new(name, "Percent", Model::Percent { sources: 1, center: draw.uniform(2.0, 40.0) }), vec![]))
            .collect();
        return (vec![], metrics, 0.0);
    }
    let (d, overflow) = mixed_radix(entity - 1, &[TABLES.len()]);
    let dims = vec![dim("TableName", suffixed(TABLES[d[0]], overflow))];
    // Reads and writes are different requests, each with a rate of its own.
    let (reads, writes) = (request_rate(draw), request_rate(draw) * 0.3);
    let mut metrics = vec![
        (Metric::new("ConsumedReadCapacityUnits", "Count", Model::Capacity { step: 0.5 }).own_requests(reads), vec![]),
        (Metric::new("ConsumedWriteCapacityUnits", "Count", Model::Capacity { step: 1.0 }).own_requests(writes), vec![]),
    ];
    for operation in OPERATIONS {
        let median = median_ms(draw, &[2.5, 4.0, 8.0]);
        let rate = request_rate(draw);
        // Each operation serves requests of its own, not the table's total.
        metrics.push((
            Metric::new("SuccessfulRequestLatency", "Milliseconds", Model::Latency { median, skew: draw.between(3, 5) as u32 })
                .own_requests(rate)
                .with_percentiles(&["p50", "p99"]),
            vec![dim("Operation", operation)],
        ));
    }
    // No metric of a table counts the table's requests as a whole.
    (dims, metrics, 0.0)
}

const ENVIRONMENTS: [&str; 3] = ["production", "staging", "development"];
const ENDPOINTS: [&str; 7] = ["/api/users", "/api/orders", "/api/products", "/api/auth/login", "/api/search", "/api/checkout", "/health"];

/// Dimensions a custom publisher adds beyond the three base ones, up to CloudWatch's 30.
const EXTRA_DIMENSIONS: [&str; MAX_DIMENSIONS - 3] = [
    "AvailabilityZone",
    "Cluster",
    "ServiceName",
    "ServiceVersion",
    "Team",
    "Tenant",
    "DeploymentId",
    "ContainerId",
    "PodName",
    "KubernetesNamespace",
    "NodeName",
    "InstanceType",
    "Runtime",
    "RuntimeVersion",
    "Protocol",
    "StatusClass",
    "ClientType",
    "ClientVersion",
    "Country",
    "CacheStatus",
    "FeatureFlag",
    "Experiment",
    "Shard",
    "Partition",
    "Queue",
    "Priority",
    "CostCenter",
];

fn extra_value(name: &str, draw: &mut Draw) -> String {
    let from = |draw: &mut Draw, values: &[&str]| (*draw.pick(values)).to_owned();
    match name {
        "AvailabilityZone" => from(draw, &["us-east-1a", "us-east-1b", "us-east-1c"]),
        "InstanceType" => from(draw, &INSTANCE_TYPES),
        "Runtime" => from(draw, &["java21", "nodejs22.x", "python3.13", "provided.al2023"]),
        "Protocol" => from(draw, &["HTTP/1.1", "HTTP/2", "gRPC"]),
        "StatusClass" => from(draw, &["2xx", "3xx", "4xx", "5xx"]),
        "Country" => from(draw, &["US", "DE", "JP", "BR", "IN", "GB"]),
        "CacheStatus" => from(draw, &["HIT", "MISS", "BYPASS"]),
        "ContainerId" | "DeploymentId" => draw.hex(12),
        "ServiceVersion" | "RuntimeVersion" | "ClientVersion" => {
            format!("{}.{}.{}", draw.between(1, 4), draw.below(20), draw.below(10))
        }
        _ => format!("{}-{}", name.to_ascii_lowercase(), draw.between(1, 12)),
    }
}

fn custom_metrics(draw: &mut Draw) -> Vec<(Metric, Dimensions)> {
    let median = median_ms(draw, &[35.0, 80.0, 250.0]);
    vec![
        (
            Metric::new("ResponseTime", "Milliseconds", Model::Latency { median, skew: draw.between(2, 4) as u32 })
                .per_request()
                .with_percentiles(&["p90", "p99"]),
            vec![],
        ),
        (Metric::new("RequestCount", "Count", Model::Events).per_request(), vec![]),
    ]
}

/// `CloudWatchApiCourse/Performance`, a custom namespace: entity 0 is the application-wide
/// aggregate (no dimensions), entity 1 carries all 30 dimensions CloudWatch allows, and every
/// fifth one after that some number in between, so decoders meet every width.
fn custom(entity: u64, draw: &mut Draw) -> Entity {
    let rate = request_rate(draw);
    if entity == 0 {
        return (vec![], custom_metrics(draw), rate * 10.0);
    }
    let (d, overflow) = mixed_radix(entity - 1, &[ENDPOINTS.len(), METHODS.len(), ENVIRONMENTS.len()]);
    let endpoint = if overflow == 0 { ENDPOINTS[d[0]].to_owned() } else { format!("/api/v{}{}", overflow + 1, ENDPOINTS[d[0]]) };
    let mut dims = vec![dim("Endpoint", endpoint), dim("HttpMethod", METHODS[d[1]]), dim("Environment", ENVIRONMENTS[d[2]])];
    let extra = match entity {
        1 => EXTRA_DIMENSIONS.len(),
        e if e % 5 == 4 => draw.between(1, EXTRA_DIMENSIONS.len() as u64 - 1) as usize,
        _ => 0,
    };
    for name in &EXTRA_DIMENSIONS[..extra] {
        let value = extra_value(name, draw);
        dims.push(dim(name, value));
    }
    (dims, custom_metrics(draw), rate)
}

/// The dimensions of the awkward entities, in turn: every character `dimension_key` escapes
/// (`\`, `,`, `=`) in names and values, alone and at the ends, beside `/`, `:`, spaces and
/// non-ASCII text. CloudWatch itself takes only ASCII in dimensions; the lake must not care.
const AWKWARD_DIMENSIONS: [&[(&str, &str)]; 6] = [
    &[],
    &[("Path", "/api/v1,items=5"), ("Method", "GET")],
    &[("a=b", "c,d"), ("e\\", "x\\y")],
    &[("Host name", "café ☕:8080")],
    &[("Key:With:Colons", "C:\\temp\\"), ("Clé", "naïve=true, ok")],
    &[("=", ","), ("\\", "\\\\")],
];

/// Awkward series ([`crate::Spec::awkward_names`]): entity `e` lives in namespace
/// `AWKWARD_NAMESPACES[e % 3]` with dimensions `AWKWARD_DIMENSIONS[e % 6]`, plus a `Replica №`
/// dimension once the combinations are used up; its metric names and units are awkward too.
fn awkward(entity: u64, draw: &mut Draw) -> Entity {
    let kinds = AWKWARD_DIMENSIONS.len() as u64;
    let mut dims: Dimensions = AWKWARD_DIMENSIONS[(entity % kinds) as usize].iter().map(|&(name, value)| dim(name, value)).collect();
    if entity >= kinds {
        dims.push(dim("Replica №", (entity / kinds).to_string()));
    }
    let median = median_ms(draw, &[12.0, 60.0, 300.0]);
    let metrics = vec![
        (
            Metric::new("Request Latency", "Milliseconds", Model::Latency { median, skew: draw.between(2, 4) as u32 })
                .per_request()
                .with_percentiles(&["p50", "p99"]),
            vec![],
        ),
        (Metric::new("Errors=5xx,4xx", "Count", Model::Flags { share: draw.uniform(0.0, 0.05) }).per_request(), vec![]),
        (Metric::new("Débit/s", "Bytes/Second", Model::Gauge { sources: 1, center: draw.uniform(1_000.0, 90_000.0) }), vec![]),
    ];
    (dims, metrics, request_rate(draw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_radix_names_every_index_once() {
        let mut seen = HashSet::new();
        for i in 0..500 {
            assert!(seen.insert(mixed_radix(i, &[3, 4])));
        }
        assert_eq!(mixed_radix(13, &[3, 4]), (vec![1, 0], 1));
        assert_eq!(suffixed("Orders", 0), "Orders");
        assert_eq!(suffixed("Orders", 1), "Orders-2");
    }

    #[test]
    fn a_namespace_does_not_depend_on_the_others() {
        let alone = build(&[2], 40, 9, 0.5);
        let mixed = build(&[0, 2, 4], 120, 9, 0.5);
        let from_mixed: Vec<_> = mixed.into_iter().filter(|s| s.namespace == "AWS/ApiGateway").collect();
        assert_eq!(alone, from_mixed);
    }

    #[test]
    fn interleaves_namespaces() {
        let series = build(&[0, 1, 2, 3, 4], 7, 1, 0.0);
        let namespaces: Vec<_> = series.iter().map(|s| s.namespace).collect();
        assert_eq!(
            namespaces,
            ["AWS/EC2", "AWS/Lambda", "AWS/ApiGateway", "AWS/DynamoDB", "CloudWatchApiCourse/Performance", "AWS/EC2", "AWS/Lambda"]
        );
    }
}
