//! The operator graph: nodes wired by `inputs`, in topological order, with the implicit
//! dead-letter sinks made explicit so that bad records travel the same channels (and get the
//! same exactly-once treatment) as good ones.

use super::spec::{NodeConfig, OnError};
use super::{Collector, Kind, Locator, PipelineSpec};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

/// Batches a channel holds before its sender blocks (back-pressure).
pub const CHANNEL_CAPACITY: usize = 16;
/// Records per batch.
pub const BATCH_SIZE: usize = 1024;

/// Which output of a node an edge carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Main,
    /// A window's late records (`<node>.late`).
    Late,
    /// Bad records whose source (graph node index) uses `on_error = "dead_letter"`.
    Errors(usize),
}

#[derive(Debug, Clone)]
pub enum Role {
    /// A node written in the file (index into `PipelineSpec::nodes`).
    Spec(usize),
    /// The dead-letter file of a source (graph node index of the source).
    DeadLetter { source: usize, path: PathBuf },
}

#[derive(Debug, Clone)]
pub struct GNode {
    pub name: String,
    pub kind: Kind,
    pub role: Role,
    /// Incoming edges, in the order of the node's `inputs` (then dead-letter edges).
    pub inputs: Vec<usize>,
    /// Outgoing edges.
    pub outputs: Vec<usize>,
    /// Graph indices of the sources whose records can reach this node.
    pub upstream_sources: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Edge {
    pub from: usize,
    pub port: Port,
    pub to: usize,
}

#[derive(Debug, Clone)]
pub struct Graph {
    /// In topological order: every node comes after all of its inputs.
    pub nodes: Vec<GNode>,
    pub edges: Vec<Edge>,
}

impl Graph {
    pub fn sources(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].kind == Kind::Source)
    }
}

/// Wires what can be wired and returns the problems alongside (with those found in reading).
pub fn build_collect(spec: &PipelineSpec) -> (Graph, Vec<super::Problem>) {
    let loc = Locator::new(&spec.text);
    let mut c = Collector {
        loc: &loc,
        list: spec.problems.clone(),
    };
    let n = spec.nodes.len();
    // (from spec index, port, to spec index)
    let mut wires: Vec<(usize, Port, usize)> = Vec::new();
    for (ti, node) in spec.nodes.iter().enumerate() {
        let name = Some(node.name.as_str());
        let inputs = node.config.inputs();
        if node.kind != Kind::Source && inputs.is_empty() {
            c.at(
                node.key_span("inputs"),
                name,
                "`inputs` is empty: name at least one upstream node",
            );
        }
        for (k, input) in inputs.iter().enumerate() {
            let span = node
                .input_spans
                .get(k)
                .cloned()
                .unwrap_or_else(|| node.key_span("inputs"));
            let (base, port) = match input.split_once('.') {
                Some((b, "late")) => (b, Port::Late),
                Some((_, other)) => {
                    c.at(
                        span,
                        name,
                        format!("unknown side output `.{other}` in `{input}`; the only side output is `<window>.late`"),
                    );
                    continue;
                }
                None => (input.as_str(), Port::Main),
            };
            let Some(fi) = spec.nodes.iter().position(|x| x.name == base) else {
                if spec.broken.iter().any(|b| b == base) {
                    continue;
                }
                let mut known: Vec<&str> = spec
                    .nodes
                    .iter()
                    .filter(|x| x.kind != Kind::Sink)
                    .map(|x| x.name.as_str())
                    .chain(spec.broken.iter().map(String::as_str))
                    .collect();
                known.sort_unstable();
                c.at(
                    span,
                    name,
                    format!(
                        "input `{input}` names no node; known sources and transforms: {}",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                continue;
            };
            let from = &spec.nodes[fi];
            if from.kind == Kind::Sink {
                c.at(
                    span,
                    name,
                    format!("input `{input}` is a sink, which has no output"),
                );
                continue;
            }
            if port == Port::Late && !matches!(from.config, NodeConfig::Window(_)) {
                c.at(
                    span,
                    name,
                    format!("`{input}`: only a window has a `.late` side output"),
                );
                continue;
            }
            if fi == ti {
                c.at(span, name, "a node cannot read its own output");
                continue;
            }
            if wires.iter().any(|w| w.0 == fi && w.1 == port && w.2 == ti) {
                c.at(span, name, format!("input `{input}` is listed twice"));
                continue;
            }
            wires.push((fi, port, ti));
        }
        // Source settings that only make sense together.
        let (on_error, dead_letter) = match &node.config {
            NodeConfig::FileSource(s) => (s.on_error, s.dead_letter.as_ref()),
            NodeConfig::Generate(s) => (s.on_error, s.dead_letter.as_ref()),
            _ => continue,
        };
        match (on_error, dead_letter) {
            (OnError::DeadLetter, None) => c.at(
                node.key_span("on_error"),
                name,
                "on_error = \"dead_letter\" needs a `dead_letter` file path",
            ),
            (OnError::Fail | OnError::Skip, Some(_)) => c.at(
                node.key_span("dead_letter"),
                name,
                "`dead_letter` is set but on_error is not \"dead_letter\"",
            ),
            _ => {}
        }
    }

    // A pipeline reads something and writes somewhere.
    let has = |k: Kind| spec.nodes.iter().any(|x| x.kind == k);
    if spec.problems.is_empty() {
        if !has(Kind::Source) {
            c.at(
                0..0,
                None,
                "the pipeline has no source: add a [sources.NAME] table",
            );
        }
        if !has(Kind::Sink) {
            c.at(
                0..0,
                None,
                "the pipeline has no sink: add a [sinks.NAME] table (path = \"-\" is stdout)",
            );
        }
    }

    // Topological order (Kahn), ties broken by file order so `explain` is stable.
    let mut indeg = vec![0usize; n];
    for w in &wires {
        indeg[w.2] += 1;
    }
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    loop {
        let next = (0..n).find(|&i| !done[i] && indeg[i] == 0);
        let Some(i) = next else { break };
        done[i] = true;
        order.push(i);
        for w in wires.iter().filter(|w| w.0 == i) {
            indeg[w.2] -= 1;
        }
    }
    if order.len() < n {
        let cyc = find_cycle(n, &wires, &done);
        let first = cyc.first().copied().unwrap_or(0);
        let names: Vec<&str> = cyc.iter().map(|&i| spec.nodes[i].name.as_str()).collect();
        c.at(
            spec.nodes[first].key_span("inputs"),
            Some(&spec.nodes[first].name),
            format!("the inputs form a cycle: {}", names.join(" -> ")),
        );
    }

    // Two sinks may not write the same file, nor both to stdout (their lines would mix).
    let mut paths: Vec<(PathBuf, &str)> = Vec::new();
    let mut stdout: Option<&str> = None;
    for node in &spec.nodes {
        let p = match &node.config {
            NodeConfig::FileSink(s) if s.path == "-" => {
                match stdout {
                    Some(other) => c.at(
                        node.key_span("path"),
                        Some(&node.name),
                        format!(
                            "writes stdout, which sink '{other}' writes too; one sink may write \
                             stdout (list both inputs in its `inputs` to merge them)"
                        ),
                    ),
                    None => stdout = Some(&node.name),
                }
                continue;
            }
            NodeConfig::FileSink(s) if s.path != "-" => spec.resolve(&s.path),
            NodeConfig::FileSource(s) => match &s.dead_letter {
                Some(d) => spec.resolve(d),
                None => continue,
            },
            NodeConfig::Generate(s) => match &s.dead_letter {
                Some(d) => spec.resolve(d),
                None => continue,
            },
            _ => continue,
        };
        // `/dev/null` and other devices hold no output two writers could mix.
        if std::fs::metadata(&p).is_ok_and(|m| m.file_type().is_char_device()) {
            continue;
        }
        if let Some((_, other)) = paths.iter().find(|(q, _)| *q == p) {
            c.at(
                node.span.clone(),
                Some(&node.name),
                format!("writes {} which node '{other}' writes too", p.display()),
            );
        } else {
            paths.push((p, &node.name));
        }
    }

    let problems = std::mem::take(&mut c.list);
    if order.len() < n {
        // A cycle leaves no order to build in; the problems say why.
        return (
            Graph {
                nodes: Vec::new(),
                edges: Vec::new(),
            },
            problems,
        );
    }

    let mut g = Graph {
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    let mut gi = vec![0usize; n];
    for &i in &order {
        gi[i] = g.nodes.len();
        g.nodes.push(GNode {
            name: spec.nodes[i].name.clone(),
            kind: spec.nodes[i].kind,
            role: Role::Spec(i),
            inputs: Vec::new(),
            outputs: Vec::new(),
            upstream_sources: Vec::new(),
        });
    }
    // Edges in the order each node lists its inputs.
    for &ti in &order {
        for w in wires.iter().filter(|w| w.2 == ti) {
            add_edge(&mut g, gi[w.0], w.1, gi[ti]);
        }
    }
    for i in 0..g.nodes.len() {
        let mut ups: Vec<usize> = if g.nodes[i].kind == Kind::Source {
            vec![i]
        } else {
            Vec::new()
        };
        for &e in &g.nodes[i].inputs {
            ups.extend(g.nodes[g.edges[e].from].upstream_sources.iter().copied());
        }
        ups.sort_unstable();
        ups.dedup();
        g.nodes[i].upstream_sources = ups;
    }
    // Dead-letter sinks, fed by the source and by every transform its records reach.
    for s in g.sources().collect::<Vec<_>>() {
        let Role::Spec(si) = g.nodes[s].role else {
            continue;
        };
        let dl = match &spec.nodes[si].config {
            NodeConfig::FileSource(c) if c.on_error == OnError::DeadLetter => c.dead_letter.clone(),
            NodeConfig::Generate(c) if c.on_error == OnError::DeadLetter => c.dead_letter.clone(),
            _ => None,
        };
        let Some(path) = dl else { continue };
        let d = g.nodes.len();
        g.nodes.push(GNode {
            name: format!("{}.dead_letter", g.nodes[s].name),
            kind: Kind::Sink,
            role: Role::DeadLetter {
                source: s,
                path: spec.resolve(&path),
            },
            inputs: Vec::new(),
            outputs: Vec::new(),
            upstream_sources: vec![s],
        });
        for i in 0..d {
            let k = g.nodes[i].kind;
            if (k == Kind::Transform || i == s) && g.nodes[i].upstream_sources.contains(&s) {
                add_edge(&mut g, i, Port::Errors(s), d);
            }
        }
    }
    (g, problems)
}

/// One cycle among the nodes Kahn's sort could not order, in data order and closed
/// (`b -> c -> b`). Those nodes also include everything downstream of a cycle, which is no
/// part of it: nodes that feed none of the rest are peeled off first.
fn find_cycle(n: usize, wires: &[(usize, Port, usize)], done: &[bool]) -> Vec<usize> {
    let mut live: Vec<bool> = done.iter().map(|d| !d).collect();
    loop {
        let dead = (0..n).find(|&i| live[i] && !wires.iter().any(|w| w.0 == i && live[w.2]));
        match dead {
            Some(i) => live[i] = false,
            None => break,
        }
    }
    let Some(start) = (0..n).find(|&i| live[i]) else {
        return Vec::new();
    };
    let mut path = vec![start];
    loop {
        let at = path[path.len() - 1];
        let Some(next) = wires
            .iter()
            .filter(|w| w.0 == at && live[w.2])
            .map(|w| w.2)
            .min()
        else {
            return path;
        };
        if let Some(k) = path.iter().position(|&p| p == next) {
            let mut cyc = path.split_off(k);
            cyc.push(next);
            return cyc;
        }
        path.push(next);
    }
}

fn add_edge(g: &mut Graph, from: usize, port: Port, to: usize) {
    let e = g.edges.len();
    g.edges.push(Edge { from, port, to });
    g.nodes[from].outputs.push(e);
    g.nodes[to].inputs.push(e);
}

/// `weir explain`: the graph as text or Graphviz dot. `notes` has a line per node or none
/// (what a source's parse workers do, decided by the runtime).
pub fn explain(spec: &PipelineSpec, g: &Graph, dot: bool, notes: &[Option<String>]) -> String {
    let mut s = String::new();
    let port_name = |g: &Graph, e: &Edge| match e.port {
        Port::Main => g.nodes[e.from].name.clone(),
        Port::Late => format!("{}.late", g.nodes[e.from].name),
        Port::Errors(_) => format!("{} (bad records)", g.nodes[e.from].name),
    };
    let what = |n: &GNode| match &n.role {
        Role::Spec(i) => format!(
            "{} {}",
            kind_word(n.kind),
            spec.nodes[*i].config.type_name()
        ),
        Role::DeadLetter { path, .. } => format!("sink dead-letter file {}", path.display()),
    };
    if dot {
        s.push_str(&format!("digraph \"{}\" {{\n  rankdir=LR;\n", spec.name));
        for n in &g.nodes {
            let shape = match n.kind {
                Kind::Source => "invhouse",
                Kind::Transform => "box",
                Kind::Sink => "house",
            };
            // A node of N instances is drawn as a stack of boxes.
            let k = instances(spec, n);
            let (shape, many) = if k > 1 {
                ("box3d", format!("\\n{k} instances"))
            } else {
                (shape, String::new())
            };
            s.push_str(&format!(
                "  \"{}\" [shape={shape}, label=\"{}\\n{}{many}\"];\n",
                n.name,
                n.name,
                what(n)
            ));
        }
        for e in &g.edges {
            let label = match e.port {
                Port::Main => String::new(),
                Port::Late => "late".into(),
                Port::Errors(_) => "bad records".into(),
            };
            s.push_str(&format!(
                "  \"{}\" -> \"{}\" [label=\"{label}\"{}];\n",
                g.nodes[e.from].name,
                g.nodes[e.to].name,
                if matches!(e.port, Port::Errors(_)) {
                    ", style=dashed"
                } else {
                    ""
                }
            ));
        }
        s.push_str("}\n");
        return s;
    }
    let parallel: Vec<String> = g
        .nodes
        .iter()
        .filter(|n| instances(spec, n) > 1)
        .map(|n| format!("{} {}", n.name, instances(spec, n)))
        .collect();
    let threads = if parallel.is_empty() {
        "one thread per node, parallelism 1".to_string()
    } else {
        format!(
            "one thread per node, and worker threads for parallelism: {}",
            parallel.join(", ")
        )
    };
    s.push_str(&format!(
        "pipeline {} ({} nodes, {} edges; {threads})\n",
        spec.name,
        g.nodes.len(),
        g.edges.len()
    ));
    s.push_str(&format!(
        "channels: bounded, {CHANNEL_CAPACITY} batches of up to {BATCH_SIZE} records each\n\nnodes (topological order):\n"
    ));
    for (idx, n) in g.nodes.iter().enumerate() {
        s.push_str(&format!("  {:<24} {}\n", n.name, what(n)));
        if let Role::Spec(i) = n.role {
            for line in describe(&spec.nodes[i].config, spec) {
                s.push_str(&format!("  {:<24}   {line}\n", ""));
            }
        }
        if let Some(Some(note)) = notes.get(idx) {
            s.push_str(&format!("  {:<24}   {note}\n", ""));
        }
    }
    s.push_str("\nedges:\n");
    for e in &g.edges {
        s.push_str(&format!(
            "  {} -> {}  [capacity {CHANNEL_CAPACITY}]\n",
            port_name(g, e),
            g.nodes[e.to].name
        ));
    }
    s
}

/// The word `explain` and `resume --plan` use for a node's kind.
pub fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Source => "source",
        Kind::Transform => "transform",
        Kind::Sink => "sink",
    }
}

/// A node's settings in the pipeline file's own words (`format = "jsonl"`, `size = "1m"`),
/// with the defaults that apply filled in, so `explain` reads like the file it explains.
fn describe(c: &NodeConfig, spec: &PipelineSpec) -> Vec<String> {
    use super::spec::{AtEnd, Delivery, Emit, Format, TimeUnit};
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let format = |f: Format| match f {
        Format::Jsonl => "\"jsonl\"",
        Format::Csv => "\"csv\"",
        Format::Tsv => "\"tsv\"",
        Format::Lines => "\"lines\"",
    };
    let at_end = |a: AtEnd| match a {
        AtEnd::Finish => "\"finish\"",
        AtEnd::Pause => "\"pause\"",
        AtEnd::Follow => "\"follow\"",
    };
    let on_error = |o: OnError| match o {
        OnError::Fail => "\"fail\"",
        OnError::Skip => "\"skip\"",
        OnError::DeadLetter => "\"dead_letter\"",
    };
    let unit = |u: Option<TimeUnit>| match u {
        None => None,
        Some(TimeUnit::S) => Some("time_unit = \"s\"".to_string()),
        Some(TimeUnit::Ms) => Some("time_unit = \"ms\"".to_string()),
    };
    let opt = |k: &str, v: &Option<String>| v.as_deref().map(|v| format!("{k} = {}", q(v)));
    let aggs = |t: &toml::Table| {
        format!(
            "aggs = {{ {} }}",
            t.iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let line =
        |items: Vec<Option<String>>| items.into_iter().flatten().collect::<Vec<_>>().join("  ");
    let some = |s: String| Some(s);
    let path = |p: &str| q(&spec.resolve(p).to_string_lossy());
    vec![match c {
        NodeConfig::FileSource(s) => line(vec![
            some(format!("path = {}", path(&s.path))),
            some(format!(
                "format = {}",
                format(super::spec::source_format(&s.path, s.format))
            )),
            some(format!("at_end = {}", at_end(s.at_end))),
            some(format!("on_error = {}", on_error(s.on_error))),
            s.dead_letter
                .as_deref()
                .map(|d| format!("dead_letter = {}", path(d))),
            s.infer_types.map(|b| format!("infer_types = {b}")),
        ]),
        NodeConfig::Generate(s) => line(vec![
            s.count.map(|n| format!("count = {n}")),
            s.rate.map(|r| format!("rate = {r}")),
            some(format!("seed = {}", s.seed)),
            s.keys.map(|k| format!("keys = {k}")),
            some(format!("at_end = {}", at_end(s.at_end))),
            some(format!("on_error = {}", on_error(s.on_error))),
        ]),
        NodeConfig::Filter(e) | NodeConfig::Map(e) => format!("expr = {}", q(&e.expr)),
        NodeConfig::Parse(p) => line(vec![
            some(format!("field = {}", q(&p.field))),
            opt("regex", &p.regex),
            opt("preset", &p.preset),
        ]),
        NodeConfig::Aggregate(a) => line(vec![
            opt("key", &a.key),
            some(aggs(&a.aggs)),
            some(
                match a.emit {
                    Emit::Final => "emit = \"final\"",
                    Emit::Updates => "emit = \"updates\"",
                }
                .into(),
            ),
            opt("state_ttl", &a.state_ttl),
            opt("time", &a.time),
            unit(a.time_unit),
            opt("time_format", &a.time_format),
        ]),
        NodeConfig::Window(w) => line(vec![
            opt("key", &w.key),
            some(format!("time = {}", q(&w.time))),
            unit(w.time_unit),
            opt("time_format", &w.time_format),
            opt("size", &w.size),
            opt("slide", &w.slide),
            opt("gap", &w.gap),
            opt("out_of_orderness", &w.out_of_orderness),
            opt("allowed_lateness", &w.allowed_lateness),
            some(aggs(&w.aggs)),
        ]),
        NodeConfig::Dedup(d) => line(vec![
            some(format!("key = {}", q(&d.key))),
            some(format!("ttl = {}", d.ttl)),
            opt("time", &d.time),
            unit(d.time_unit),
            opt("time_format", &d.time_format),
        ]),
        NodeConfig::FileSink(s) => line(vec![
            some(format!(
                "path = {}",
                if s.path == "-" { q("-") } else { path(&s.path) }
            )),
            some(format!(
                "format = {}",
                format(super::spec::sink_format(&s.path, s.format))
            )),
            s.delivery.map(|d| {
                match d {
                    Delivery::AtLeastOnce => "delivery = \"at-least-once\"",
                    Delivery::ExactlyOnce => "delivery = \"exactly-once\"",
                }
                .to_string()
            }),
        ]),
        other => crate::sinks::describe(spec, other).join("  "),
    }]
    .into_iter()
    .chain(parallel_lines(c))
    .collect()
}

/// For a keyed node: its parallelism and key groups, and with more than one instance, which
/// groups each instance owns (as `transforms::keygroup` assigns them: `g * N / max`).
fn parallel_lines(c: &NodeConfig) -> Vec<String> {
    let Some((n, max)) = super::spec::keyed_parallelism(c) else {
        return Vec::new();
    };
    let mut v = vec![format!("parallelism = {n}  max_parallelism = {max}")];
    if n > 1 && n <= max {
        let (n, max) = (n as u64, max as u64);
        let first = |i: u64| (i * max).div_ceil(n);
        let ranges: Vec<String> = (0..n)
            .map(|i| {
                let (a, b) = (first(i), first(i + 1) - 1);
                if a == b {
                    format!("#{i} {a}")
                } else {
                    format!("#{i} {a}-{b}")
                }
            })
            .collect();
        v.push(format!(
            "{n} instances (this node's thread and {} workers), each record routed by a hash of its key to one of {max} key groups; groups: {}",
            n - 1,
            ranges.join(", ")
        ));
    }
    v
}

/// The instances of a node (`parallelism`), 1 for nodes that are not keyed.
fn instances(spec: &PipelineSpec, n: &GNode) -> i64 {
    match n.role {
        Role::Spec(i) => super::spec::keyed_parallelism(&spec.nodes[i].config).map_or(1, |p| p.0),
        Role::DeadLetter { .. } => 1,
    }
}
