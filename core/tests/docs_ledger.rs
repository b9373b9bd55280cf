//! `docs/ARCHITECTURE.md` carries the ledger registry's table; this keeps the copy true.

use weir_core::mem::registry_table;

#[test]
fn architecture_doc_lists_every_ledger_account_of_the_registry() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ARCHITECTURE.md");
    let doc = std::fs::read_to_string(path).expect("docs/ARCHITECTURE.md is readable");
    let (start, end) = ("<!-- ledger-table:start -->\n", "<!-- ledger-table:end -->");
    let from = doc.find(start).expect("start marker") + start.len();
    let to = doc.find(end).expect("end marker");
    let want = registry_table();
    assert_eq!(
        &doc[from..to],
        want,
        "docs/ARCHITECTURE.md's ledger table differs from mem::REGISTRY; put this between the markers:\n{want}"
    );
}
