//! A job file, as `sharegrid submit` reads it: parsing checks every term,
//! and a job that parses expands to its tasks without blowing up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sharegrid_core::job::JobFile;

fuzz_target!(init: sharegrid_fuzz::seeds::write_if_asked("job_file"), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(job) = JobFile::parse("job.toml", text) {
        let tasks = job.expand();
        assert!(!tasks.is_empty(), "a job that parses has at least one task");
    }
});
