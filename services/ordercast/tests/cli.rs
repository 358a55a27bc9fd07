//! The binary as an operator meets it: a wrong or missing setting stops it
//! with one line that names the setting, whatever RUST_BACKTRACE says.

use std::process::Command;

fn ordercast(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ordercast"));
    command.args(args).env_clear().env("RUST_BACKTRACE", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run the binary");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_bad_setting_stops_the_process_with_one_line_naming_it() {
    let env = [
        ("ORDERCAST_DATABASE_URL", "postgres://127.0.0.1:1/none"),
        ("ORDERCAST_REDIS_URL", "redis://127.0.0.1:1"),
        (
            "ORDERCAST_JWT_SECRET",
            "a-secret-of-at-least-thirty-two-bytes!!",
        ),
        ("ORDERCAST_RING_SIZE", "0"),
    ];
    let (ok, stderr) = ordercast(&["all"], &env);

    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("ORDERCAST_RING_SIZE"), "{stderr}");
}

#[test]
fn a_missing_secret_is_named_in_one_line() {
    let env = [
        ("ORDERCAST_DATABASE_URL", "postgres://127.0.0.1:1/none"),
        ("ORDERCAST_REDIS_URL", "redis://127.0.0.1:1"),
    ];
    let (ok, stderr) = ordercast(&["api"], &env);

    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ORDERCAST_JWT_SECRET"), "{stderr}");
}
