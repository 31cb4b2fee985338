//! Real log formats and times: each `parse` preset on real-looking lines (the examples of the
//! RFCs and of the Apache docs, nginx lines with IPv6 clients, TLS probes, escaped quotes),
//! with the expected fields written out by hand; `time_format` for nginx times; the warning
//! for late records nobody reads.

use crate::common::*;

/// Runs `parse` with `preset` on `lines` (a `lines` source, `on_error`), printing each record
/// without its `line`. Returns weir's output.
fn parse_with(preset: &str, lines: &[&str], on_error: &str) -> (Proj, Out) {
    let p = Proj::new();
    let mut text = lines.join("\n");
    text.push('\n');
    p.write("in.log", text);
    p.write(
        "p.toml",
        format!(
            r#"name = "presets"
[checkpoint]
every = "off"
[sources.s]
type = "file"
path = "in.log"
format = "lines"
on_error = "{on_error}"
[transforms.p]
type = "parse"
inputs = ["s"]
field = "line"
preset = "{preset}"
[transforms.m]
type = "map"
inputs = ["p"]
expr = "del(.line)"
[sinks.o]
type = "file"
inputs = ["m"]
path = "-"
"#
        ),
    );
    let o = p.weir(&["run", "p.toml"]);
    o.expect_no_panic();
    (p, o)
}

#[track_caller]
fn expect_fields(preset: &str, lines: &[&str], want: &[&str]) {
    let (_p, o) = parse_with(preset, lines, "fail");
    o.expect_code(0);
    let got = o.stdout_str();
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(got, want);
}

#[test]
fn nginx_combined_with_ipv6_tls_probes_dash_requests_and_escaped_quotes() {
    expect_fields(
        "nginx_combined",
        &[
            r#"2001:db8::1 - - [01/Nov/2026:10:00:00 +0000] "GET /a?x=1 HTTP/2.0" 200 512 "-" "curl/8.5.0""#,
            r#"203.0.113.7 - bob [01/Nov/2026:11:30:05 +0100] "POST /login HTTP/1.1" 302 0 "https://ex.com/?q=\x22a\x22" "Mozilla/5.0 (\x22Quoted\x22; like Gecko)""#,
            r#"198.51.100.1 - - [01/Nov/2026:10:00:02 +0000] "\x16\x03\x01\x00\xFC\x03\x03" 400 157 "-" "-""#,
            r#"::1 - - [01/Nov/2026:10:00:03 +0000] "-" 408 0 "-" "-""#,
            // A log_format that appends fields after the user agent.
            r#"192.0.2.4 - - [01/Nov/2026:10:00:04 +0000] "GET / HTTP/1.1" 200 612 "-" "kube-probe/1.29" "2.31" rt=0.002"#,
        ],
        &[
            r#"{"client":"2001:db8::1","ident":null,"user":null,"timestamp":"2026-11-01T10:00:00Z","request":"GET /a?x=1 HTTP/2.0","method":"GET","path":"/a?x=1","protocol":"HTTP/2.0","status":200,"size":512,"referer":null,"agent":"curl/8.5.0"}"#,
            r#"{"client":"203.0.113.7","ident":null,"user":"bob","timestamp":"2026-11-01T10:30:05Z","request":"POST /login HTTP/1.1","method":"POST","path":"/login","protocol":"HTTP/1.1","status":302,"size":0,"referer":"https://ex.com/?q=\"a\"","agent":"Mozilla/5.0 (\"Quoted\"; like Gecko)"}"#,
            r#"{"client":"198.51.100.1","ident":null,"user":null,"timestamp":"2026-11-01T10:00:02Z","request":"\\x16\\x03\\x01\\x00\\xFC\\x03\\x03","method":null,"path":null,"protocol":null,"status":400,"size":157,"referer":null,"agent":null}"#,
            r#"{"client":"::1","ident":null,"user":null,"timestamp":"2026-11-01T10:00:03Z","request":"-","method":null,"path":null,"protocol":null,"status":408,"size":0,"referer":null,"agent":null}"#,
            r#"{"client":"192.0.2.4","ident":null,"user":null,"timestamp":"2026-11-01T10:00:04Z","request":"GET / HTTP/1.1","method":"GET","path":"/","protocol":"HTTP/1.1","status":200,"size":612,"referer":null,"agent":"kube-probe/1.29"}"#,
        ],
    );
}

#[test]
fn apache_common_and_combined_with_a_dash_for_bytes_and_backslash_escaped_quotes() {
    // The examples of the Apache httpd log documentation, and the odd ones.
    expect_fields(
        "apache_common",
        &[
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#,
            r#"fe80::1 ident7 - [10/Oct/2000:13:55:37 -0700] "HEAD / HTTP/1.0" 304 -"#,
        ],
        &[
            r#"{"client":"127.0.0.1","ident":null,"user":"frank","timestamp":"2000-10-10T20:55:36Z","request":"GET /apache_pb.gif HTTP/1.0","method":"GET","path":"/apache_pb.gif","protocol":"HTTP/1.0","status":200,"size":2326}"#,
            r#"{"client":"fe80::1","ident":"ident7","user":null,"timestamp":"2000-10-10T20:55:37Z","request":"HEAD / HTTP/1.0","method":"HEAD","path":"/","protocol":"HTTP/1.0","status":304,"size":null}"#,
        ],
    );
    expect_fields(
        "apache_combined",
        &[
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#,
            r#"10.1.2.3 - - [10/Oct/2000:13:56:00 -0700] "GET /q?s=\"x\" HTTP/1.1" 404 - "-" "Agent \"Evil\" 1.0 \\ end""#,
        ],
        &[
            r#"{"client":"127.0.0.1","ident":null,"user":"frank","timestamp":"2000-10-10T20:55:36Z","request":"GET /apache_pb.gif HTTP/1.0","method":"GET","path":"/apache_pb.gif","protocol":"HTTP/1.0","status":200,"size":2326,"referer":"http://www.example.com/start.html","agent":"Mozilla/4.08 [en] (Win98; I ;Nav)"}"#,
            r#"{"client":"10.1.2.3","ident":null,"user":null,"timestamp":"2000-10-10T20:56:00Z","request":"GET /q?s=\"x\" HTTP/1.1","method":"GET","path":"/q?s=\"x\"","protocol":"HTTP/1.1","status":404,"size":null,"referer":null,"agent":"Agent \"Evil\" 1.0 \\ end"}"#,
        ],
    );
}

#[test]
fn syslog_rfc3164_with_and_without_priority_and_pid() {
    expect_fields(
        "syslog_rfc3164",
        &[
            // RFC 3164 section 5.4.
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            // As rsyslog writes files: no priority, a space-padded day, a pid.
            "Nov  1 10:00:00 web1 sshd[4123]: Accepted publickey for deploy from 2001:db8::7 port 52144 ssh2",
            // rsyslog's high-precision format.
            "2026-11-01T10:00:00.123456+00:00 web1 CRON[999]: (root) CMD (run-parts /etc/cron.hourly)",
        ],
        &[
            r#"{"facility":"auth","severity":"crit","timestamp":"Oct 11 22:14:15","hostname":"mymachine","appname":"su","procid":null,"message":"'su root' failed for lonvick on /dev/pts/8"}"#,
            r#"{"facility":null,"severity":null,"timestamp":"Nov  1 10:00:00","hostname":"web1","appname":"sshd","procid":4123,"message":"Accepted publickey for deploy from 2001:db8::7 port 52144 ssh2"}"#,
            r#"{"facility":null,"severity":null,"timestamp":"2026-11-01T10:00:00.123456+00:00","hostname":"web1","appname":"CRON","procid":999,"message":"(root) CMD (run-parts /etc/cron.hourly)"}"#,
        ],
    );
}

#[test]
fn syslog_rfc5424_with_and_without_structured_data() {
    expect_fields(
        "syslog_rfc5424",
        &[
            // The examples of RFC 5424 section 6.5 (the first with its BOM).
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8",
            "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry..."#,
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]"#,
            // Escapes inside a PARAM-VALUE.
            r#"<14>1 2026-11-01T10:00:00Z h app 42 - [x@1 q="say \"hi\" \] \\"] done"#,
        ],
        &[
            r#"{"facility":"auth","severity":"crit","version":1,"timestamp":"2003-10-11T22:14:15.003Z","hostname":"mymachine.example.com","appname":"su","procid":null,"msgid":"ID47","structured_data":null,"message":"'su root' failed for lonvick on /dev/pts/8"}"#,
            r#"{"facility":"local4","severity":"notice","version":1,"timestamp":"2003-08-24T05:14:15.000003-07:00","hostname":"192.0.2.1","appname":"myproc","procid":8710,"msgid":null,"structured_data":null,"message":"%% It's time to make the do-nuts."}"#,
            r#"{"facility":"local4","severity":"notice","version":1,"timestamp":"2003-10-11T22:14:15.003Z","hostname":"mymachine.example.com","appname":"evntslog","procid":null,"msgid":"ID47","structured_data":{"exampleSDID@32473":{"iut":"3","eventSource":"Application","eventID":"1011"}},"message":"An application event log entry..."}"#,
            r#"{"facility":"local4","severity":"notice","version":1,"timestamp":"2003-10-11T22:14:15.003Z","hostname":"mymachine.example.com","appname":"evntslog","procid":null,"msgid":"ID47","structured_data":{"exampleSDID@32473":{"iut":"3","eventSource":"Application","eventID":"1011"},"examplePriority@32473":{"class":"high"}},"message":""}"#,
            r#"{"facility":"user","severity":"info","version":1,"timestamp":"2026-11-01T10:00:00Z","hostname":"h","appname":"app","procid":42,"msgid":null,"structured_data":{"x@1":{"q":"say \"hi\" ] \\"}},"message":"done"}"#,
        ],
    );
}

#[test]
fn logfmt_with_quoted_values_flags_and_numbers() {
    expect_fields(
        "logfmt",
        &[
            r#"time=2026-11-01T10:00:00Z level=info msg="GET /api \"quoted\" ok" status=200 dur=0.35 cached user= id=007"#,
            r#"level=error err="dial tcp 10.0.0.7:5432: connection refused\nretrying" attempt=3"#,
        ],
        &[
            r#"{"time":"2026-11-01T10:00:00Z","level":"info","msg":"GET /api \"quoted\" ok","status":200,"dur":0.35,"cached":true,"user":"","id":"007"}"#,
            r#"{"level":"error","err":"dial tcp 10.0.0.7:5432: connection refused\nretrying","attempt":3}"#,
        ],
    );
}

#[test]
fn json_in_a_field_and_lines_that_do_not_fit_are_bad_input_naming_the_line() {
    expect_fields(
        "json",
        &[r#"{"a":1,"b":{"c":[1,"x"]},"line":"inner"}"#],
        // The inner `line` replaced the outer one, which `del(.line)` then removed.
        &[r#"{"a":1,"b":{"c":[1,"x"]}}"#],
    );
    for (preset, line, why) in [
        ("json", "[1,2]", "not an object"),
        ("json", "{\"a\":", "not JSON"),
        (
            "nginx_combined",
            "192.0.2.10 - - [01/Nov/2026:10:03:0",
            "not an nginx combined line",
        ),
        (
            "syslog_rfc5424",
            "<999>1 2026-11-01T10:00:00Z h a - - - m",
            "out of range",
        ),
        ("logfmt", "msg=\"never closed", "no closing quote"),
    ] {
        let (_p, o) = parse_with(preset, &[line], "fail");
        o.expect_code(3);
        assert!(o.stderr.contains("in.log:1"), "{preset}: {}", o.stderr);
        assert!(o.stderr.contains(why), "{preset}: {}", o.stderr);
    }
    // Under skip, the other lines go on.
    let (_p, o) = parse_with("logfmt", &["a=1", "\"oops", "b=2"], "skip");
    o.expect_code(0);
    assert_eq!(o.stdout_str(), "{\"a\":1}\n{\"b\":2}\n");
}

#[test]
fn a_parse_needs_exactly_one_of_regex_and_preset_and_a_known_preset() {
    let p = Proj::new();
    let head = "name = \"x\"\n[sources.s]\ntype = \"file\"\npath = \"in.log\"\nformat = \"lines\"\n[sinks.o]\ntype = \"file\"\ninputs = [\"p\"]\npath = \"-\"\n[transforms.p]\ntype = \"parse\"\ninputs = [\"s\"]\nfield = \"line\"\n";
    for (extra, why) in [
        (
            "preset = \"nginx\"\n",
            "unknown preset `nginx`; presets: nginx_combined",
        ),
        ("", "one of the two"),
        ("preset = \"json\"\nregex = '(?P<a>.)'\n", "one of the two"),
    ] {
        p.write("p.toml", format!("{head}{extra}"));
        let o = p.weir(&["validate", "p.toml"]);
        o.expect_code(2);
        assert!(o.stderr.contains(why), "{}", o.stderr);
    }
}

const WINDOW: &str = r#"name = "tf"
[checkpoint]
every = "off"
[sources.s]
type = "file"
path = "in.jsonl"
[transforms.w]
type = "window"
inputs = ["s"]
key = ".p"
time = ".t"
time_format = "%d/%b/%Y:%H:%M:%S %z"
size = "1m"
aggs = { n = "count" }
[sinks.o]
type = "file"
inputs = ["w"]
path = "-"
"#;

#[test]
fn time_format_reads_nginx_times_and_an_unparsable_time_is_bad_input_naming_the_record() {
    let p = Proj::new();
    p.write(
        "in.jsonl",
        r#"{"t":"01/Nov/2026:10:00:10 +0000","p":"/a"}
{"t":"01/Nov/2026:10:00:50 +0000","p":"/a"}
{"t":"01/Nov/2026:11:01:10 +0100","p":"/a"}
{"t":"01/Nov/2026:05:01:59 -0500","p":"/b"}
"#,
    );
    p.write("p.toml", WINDOW);
    let o = p.weir(&["run", "p.toml"]);
    o.expect_code(0).expect_no_panic();
    assert_eq!(
        o.stdout_str(),
        concat!(
            r#"{"key":"/a","window_start":"2026-11-01T10:00:00Z","window_end":"2026-11-01T10:01:00Z","n":2}"#,
            "\n",
            r#"{"key":"/a","window_start":"2026-11-01T10:01:00Z","window_end":"2026-11-01T10:02:00Z","n":1}"#,
            "\n",
            r#"{"key":"/b","window_start":"2026-11-01T10:01:00Z","window_end":"2026-11-01T10:02:00Z","n":1}"#,
            "\n",
        )
    );

    p.append(
        "in.jsonl",
        "{\"t\":\"2026-11-01T10:02:00Z\",\"p\":\"/a\"}\n",
    );
    let o = p.weir(&["run", "p.toml"]);
    o.expect_code(3).expect_no_panic();
    assert!(o.stderr.contains("in.jsonl:5"), "{}", o.stderr);
    assert!(
        o.stderr.contains("node 'w'")
            && o.stderr.contains(
                "`2026-11-01T10:02:00Z` does not match time_format `%d/%b/%Y:%H:%M:%S %z`"
            ),
        "{}",
        o.stderr
    );

    p.write("p.toml", WINDOW.replace("%z\"", "%J\""));
    let o = p.weir(&["validate", "p.toml"]);
    o.expect_code(2);
    assert!(o.stderr.contains("`time_format`"), "{}", o.stderr);
}

#[test]
fn dedup_reads_its_time_with_time_format() {
    let p = Proj::new();
    p.write(
        "in.jsonl",
        r#"{"t":"01/Nov/2026:10:00:00 +0000","id":1}
{"t":"01/Nov/2026:10:00:30 +0000","id":1}
{"t":"01/Nov/2026:10:01:01 +0000","id":1}
{"t":"01/Nov/2026:11:01:30 +0100","id":1}
{"t":"01/Nov/2026:05:02:02 -0500","id":1}
"#,
    );
    p.write(
        "p.toml",
        r#"name = "dd"
[checkpoint]
every = "off"
[sources.s]
type = "file"
path = "in.jsonl"
[transforms.d]
type = "dedup"
inputs = ["s"]
key = ".id"
ttl = "1m"
time = ".t"
time_format = "%d/%b/%Y:%H:%M:%S %z"
[sinks.o]
type = "file"
inputs = ["d"]
path = "-"
"#,
    );
    let o = p.weir(&["run", "p.toml"]);
    o.expect_code(0).expect_no_panic();
    // 10:00:00 kept; 10:00:30 within 1m of it; 10:01:01 kept; 10:01:30 (11:01:30+01:00)
    // within 1m of it; 10:02:02 (05:02:02-05:00) 61 s after it, kept.
    assert_eq!(
        o.stdout_str(),
        "{\"t\":\"01/Nov/2026:10:00:00 +0000\",\"id\":1}\n{\"t\":\"01/Nov/2026:10:01:01 +0000\",\"id\":1}\n{\"t\":\"01/Nov/2026:05:02:02 -0500\",\"id\":1}\n"
    );
}

const LATE: &str = r#"name = "late"
[sources.s]
type = "file"
path = "in.jsonl"
[transforms.per_minute]
type = "window"
inputs = ["s"]
time = ".ts"
size = "1m"
aggs = { n = "count" }
[sinks.o]
type = "file"
inputs = ["per_minute"]
path = "out.jsonl"
"#;

#[test]
fn late_records_dropped_unread_are_reported_at_the_end_unless_quiet() {
    let p = Proj::new();
    // With out_of_orderness 0, each record more than a window behind the newest is late:
    // 10:00:40 after 10:01:10, then 10:00:50 and 10:01:59 after 10:02:05.
    let ts = [
        "10:00:30", "10:01:10", "10:00:40", "10:02:05", "10:00:50", "10:01:59", "10:02:30",
    ];
    let input: String = ts
        .iter()
        .map(|t| format!("{{\"ts\":\"2026-11-01T{t}Z\"}}\n"))
        .collect();
    p.write("in.jsonl", &input);
    p.write("p.toml", LATE);
    let o = p.weir(&["run", "p.toml"]);
    o.expect_code(0).expect_no_panic();
    assert!(
        o.stderr
            .contains("window 'per_minute' dropped 3 late records")
            && o.stderr.contains("wire `per_minute.late` to a sink")
            && o.stderr.contains("raise `out_of_orderness`"),
        "{}",
        o.stderr
    );
    let o = p.weir(&["-q", "run", "--fresh", "p.toml"]);
    o.expect_code(0);
    assert_eq!(o.stderr, "");

    // Wired: the records are kept, and nothing needs saying.
    p.write(
        "p.toml",
        format!(
            "{LATE}[sinks.late]\ntype = \"file\"\ninputs = [\"per_minute.late\"]\npath = \"late.jsonl\"\n"
        ),
    );
    let o = p.weir(&["run", "--fresh", "p.toml"]);
    o.expect_code(0);
    assert!(!o.stderr.contains("late record"), "{}", o.stderr);
    assert_eq!(p.read_str("late.jsonl").lines().count(), 3);
}

#[test]
fn example_nginx_access_matches_its_expected_output() {
    crate::examples::example_matches("nginx_access", &["nginx_access.jsonl"]);
}
