// `sqlx::migrate!` embeds migrations/ at compile time; rebuild when it
// changes (a new or edited migration would otherwise be missed).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
