use super::*;

fn v(s: &str) -> Value {
    Value::from_json(s.as_bytes()).unwrap()
}

fn show(r: &Result<Vec<Value>, EvalError>) -> String {
    match r {
        Ok(vs) => vs
            .iter()
            .map(|v| v.to_json_string())
            .collect::<Vec<_>>()
            .join(" "),
        Err(e) => format!("ERROR: {}", e.message),
    }
}

fn run(e: &Expr, input: &Value) -> Result<Vec<Value>, EvalError> {
    let mut out = Vec::new();
    e.eval(input, &mut out).map(|()| out)
}

#[test]
#[ignore]
fn probe() {
    let exprs = std::fs::read_to_string("/tmp/probe/exprs.txt").unwrap();
    let inputs = std::fs::read_to_string("/tmp/probe/inputs.txt").unwrap();
    let inputs: Vec<Value> = inputs.lines().filter(|l| !l.is_empty()).map(v).collect();
    for src in exprs.lines().filter(|l| !l.is_empty()) {
        let n = match Expr::compile(src) {
            Ok(n) => n,
            Err(e) => {
                println!("COMPILE ERROR {src}: {e}");
                continue;
            }
        };
        let f = Expr::compile_fallback_only(src).unwrap();
        for i in &inputs {
            let (a, b) = (run(&n, i), run(&f, i));
            let same = match (&a, &b) {
                (Ok(x), Ok(y)) => x == y,
                (Err(_), Err(_)) => true,
                _ => false,
            };
            if !same {
                println!(
                    "DIFF {src}  on {}\n   native: {}\n   jaq:    {}",
                    i.to_json_string(),
                    show(&a),
                    show(&b)
                );
            }
        }
        for i in &inputs {
            let all = run(&n, i);
            let first = n.eval_first(i);
            let ok = match (&all, &first) {
                (Ok(a), Ok(f)) => a.first() == f.as_ref(),
                (Err(_), Err(_)) => true,
                (Err(_), Ok(Some(_))) => true,
                _ => false,
            };
            if !ok {
                println!(
                    "FIRST MISMATCH {src} on {}: all={} first={:?}",
                    i.to_json_string(),
                    show(&all),
                    first
                );
            }
        }
        if !n.is_native() {
            println!("NOT NATIVE: {src}");
        }
    }
}
