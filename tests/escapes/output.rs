//! Output floods. Each stream keeps at most 4 KiB here (the suite checks the caps on every
//! case); a flood is cut, `truncated` says so, the text stays valid UTF-8, the run's result
//! survives the flood, and a result or error larger than `max_result_bytes` is refused rather
//! than returned.

use serde_json::json;

use crate::harness::*;

const CAP: usize = 4096;

fn env() -> Env {
    Env::new(EnvSpec {
        limits: &[
            ("stdout_bytes", CAP as u64),
            ("stderr_bytes", CAP as u64),
            ("default_timeout_ms", 1_500),
            ("fuel", 3_000_000_000),
        ],
        api: false,
        sink: false,
        network: no_network,
    })
}

fn stdout_full(o: &Outcome) -> Result<(), String> {
    if o.result.truncated.stdout && o.result.stdout.len() + 4 >= CAP {
        Ok(())
    } else {
        Err(format!(
            "stdout should be cut at the cap and flagged (got {} bytes, truncated = {})",
            o.result.stdout.len(),
            o.result.truncated.stdout
        ))
    }
}

fn stderr_full(o: &Outcome) -> Result<(), String> {
    if o.result.truncated.stderr && o.result.stderr.len() + 4 >= CAP {
        Ok(())
    } else {
        Err(format!(
            "stderr should be cut at the cap and flagged (got {} bytes, truncated = {})",
            o.result.stderr.len(),
            o.result.truncated.stderr
        ))
    }
}

pub fn cases(_: &Ports) -> Vec<Case> {
    vec![
        Case::js("JavaScript console.log in an endless loop", "while (true) console.log('x'.repeat(100))")
            .must("ends by a limit; stdout cut at the cap and flagged")
            .status(&["timeout", "out_of_fuel"])
            .check(stdout_full),
        Case::js("JavaScript 100000 lines, then a result", "for (let i = 0; i < 1e5; i++) console.log(i); 'done'")
            .must("the result survives; stdout cut and flagged")
            .ok_with(json!("done"))
            .check(stdout_full),
        Case::js("JavaScript one 10 MiB line", "console.log('x'.repeat(10 * 1024 * 1024)); 'done'")
            .must("the result survives; stdout cut and flagged")
            .ok_with(json!("done"))
            .check(stdout_full),
        Case::js("JavaScript console.error flood", "for (let i = 0; i < 1e5; i++) console.error('e' + i); 'done'")
            .must("stderr cut and flagged; stdout untouched")
            .ok_with(json!("done"))
            .check(stderr_full)
            .check(|o| if o.result.truncated.stdout { Err("stdout flagged".into()) } else { Ok(()) }),
        Case::js("JavaScript two-byte characters across the cap", "console.log('é'.repeat(5000)); 'done'")
            .must("cut on a character boundary: the text is whole characters only")
            .ok_with(json!("done"))
            .check(|o| {
                if o.result.stdout.chars().all(|c| c == 'é') && o.result.truncated.stdout {
                    Ok(())
                } else {
                    Err("the cut split a character or kept something else".into())
                }
            }),
        Case::js(
            "JavaScript flood from timer callbacks that reschedule themselves",
            "setTimeout(function f() { console.log('tick'.repeat(100)); setTimeout(f, 1) }, 1); 'done'",
        )
        .must("ends by a limit; stdout cut and flagged")
        .status(&["timeout", "out_of_fuel"])
        .check(stdout_full),
        Case::js(
            "JavaScript console.table of 2000 rows",
            "console.table(Array.from({ length: 2000 }, (_, i) => ({ i, s: 'x'.repeat(50) }))); 'done'",
        )
        .must("the result survives; stdout cut and flagged")
        .ok_with(json!("done"))
        .check(stdout_full),
        Case::js("JavaScript terminal escape sequences", "console.log('\\x1b[2J\\x1b[31mred\\r\\x07'); 'done'")
            .must("returned as inert data, byte for byte")
            .ok_with(json!("done"))
            .check(|o| {
                if o.result.stdout == "\u{1b}[2J\u{1b}[31mred\r\u{7}\n" {
                    Ok(())
                } else {
                    Err("the output was altered".into())
                }
            }),
        Case::js("JavaScript a 1 MiB result (max_result_bytes is 64 KiB)", "'x'.repeat(1 << 20)")
            .must("refused as ResultTooLarge, not returned")
            .status(&["error"])
            .error_type(&["ResultTooLarge"]),
        Case::js("JavaScript throws an error with a 10 MiB message", "throw new Error('x'.repeat(10 * 1024 * 1024))")
            .must("an error, with the oversized outcome refused (ResultTooLarge)")
            .status(&["error"])
            .error_type(&["ResultTooLarge"]),
        Case::js(
            "JavaScript sets a 5 MiB stack on the error it throws",
            "const e = new Error('m'); e.stack = 'y'.repeat(5e6); throw e",
        )
        .must("an error, with the oversized outcome refused (ResultTooLarge)")
        .status(&["error"])
        .error_type(&["ResultTooLarge"]),
        Case::py("Python print in an endless loop", "while True:\n    print('x' * 100)")
            .must("ends by a limit; stdout cut and flagged")
            .status(&["timeout", "out_of_fuel"])
            .check(stdout_full),
        Case::py("Python os.write(1) flood, then a result", "import os\nfor i in range(100000):\n    os.write(1, b'y' * 100)\n'done'")
            .must("the result survives; stdout cut and flagged")
            .ok_with(json!("done"))
            .check(stdout_full),
        Case::py("Python stderr flood", "import sys\nfor i in range(100000):\n    print(i, file=sys.stderr)\n'done'")
            .must("stderr cut and flagged")
            .ok_with(json!("done"))
            .check(stderr_full),
        Case::py(
            "Python writes invalid UTF-8 bytes to stdout",
            "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe\\x00bad' * 2000)\n'done'",
        )
        .must("stdout comes back as valid text, cut and flagged, within its cap")
        .ok_with(json!("done"))
        .check(stdout_full),
        Case::py("Python raises an exception with a 2 MB message", "raise ValueError('x' * 2 * 10**6)")
            .must("an error, with the oversized outcome refused (ResultTooLarge)")
            .status(&["error"])
            .error_type(&["ResultTooLarge"]),
        Case::py("Python a 1 MB result", "'x' * 10**6")
            .must("refused as ResultTooLarge, not returned")
            .status(&["error"])
            .error_type(&["ResultTooLarge"]),
        Case::py(
            "Python closes sys.stdout, then prints",
            "import sys\nsys.stdout.close()\nprint('after close')",
        )
        .must("a clean error of the program; the next run has its stdout back")
        .status(&["error"])
        .then(PY, "print('back')\n1")
        .check(|o| match &o.next {
            Some(r) if r.stdout == "back\n" => Ok(()),
            _ => Err("the next run's stdout is not back".into()),
        }),
    ]
}

#[tokio::test]
async fn output() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("output", &env, cases, Mode::Regular).await;
}
