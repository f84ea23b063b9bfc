//! `test_database_url`: distinct, empty, usable databases, from many threads at once.

mod common;

use std::{collections::HashSet, thread};

use common::psql;
use sluice_devkit::{PgBinaries, test_database_url};

#[test]
fn concurrent_callers_get_distinct_empty_databases() {
    let urls: Vec<String> = thread::scope(|scope| {
        let handles: Vec<_> = (0..8).map(|_| scope.spawn(test_database_url)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("test_database_url panicked"))
            .collect()
    });
    let distinct: HashSet<&String> = urls.iter().collect();
    assert_eq!(distinct.len(), urls.len(), "{urls:?}");

    let bins = PgBinaries::find().expect("Postgres binaries");
    for url in &urls {
        let tables = psql(
            bins.bin_dir(),
            url,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        );
        assert_eq!(tables, "0", "{url} is not empty");
    }
    // Each database is private to its test: a table in one is not in another.
    psql(bins.bin_dir(), &urls[0], "CREATE TABLE mine (x int)");
    let other = psql(
        bins.bin_dir(),
        &urls[1],
        "SELECT to_regclass('mine') IS NULL",
    );
    assert_eq!(other, "t");
}
