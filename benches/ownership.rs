//! Ownership resolution: 100k synthetic paths against 1k rules of a realistic mix,
//! switchyard's index against the plain baseline (one `GlobSet`, `matches(path).max()`),
//! both measured in this run. Asserts that both give the same answer for every path.
//!
//!     cargo bench --bench ownership

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use globset::{GlobBuilder, GlobSetBuilder};
use switchyard::diagnostic::Location;
use switchyard::model::SubsystemName;
use switchyard::ownership::{Ownership, Pattern, Rule};

const PATHS: usize = 100_000;
const RULES: usize = 1_000;
const RUNS: usize = 5;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TOPS: [&str; 8] = [
    "src", "lib", "tests", "docs", "tools", "web", "services", "infra",
];
const EXTS: [&str; 8] = ["rs", "go", "ts", "md", "json", "proto", "py", "yaml"];

fn dir_name(i: usize) -> String {
    format!("d{i:03}")
}

fn paths(rng: &mut Rng) -> Vec<String> {
    (0..PATHS)
        .map(|_| {
            let depth = 1 + rng.below(5);
            let mut parts = vec![TOPS[rng.below(TOPS.len())].to_owned()];
            for _ in 1..depth {
                parts.push(dir_name(rng.below(300)));
            }
            parts.push(format!(
                "file{:03}.{}",
                rng.below(200),
                EXTS[rng.below(EXTS.len())]
            ));
            parts.join("/")
        })
        .collect()
}

/// 1k rules: a catch-all first, then 60% `dir/**`, 15% exact files, 10% `**/*.ext`
/// flavours, 10% `**/name/**`, 5% other globs.
fn globs(rng: &mut Rng, paths: &[String]) -> Vec<String> {
    let mut out = vec!["**".to_owned()];
    while out.len() < RULES {
        let roll = rng.below(100);
        let glob = if roll < 60 {
            let depth = 1 + rng.below(2);
            let mut parts = vec![TOPS[rng.below(TOPS.len())].to_owned()];
            for _ in 0..depth {
                parts.push(dir_name(rng.below(300)));
            }
            format!("{}/**", parts.join("/"))
        } else if roll < 75 {
            paths[rng.below(paths.len())].clone()
        } else if roll < 85 {
            let ext = EXTS[rng.below(EXTS.len())];
            match rng.below(3) {
                0 => format!("**/*.{ext}"),
                1 => format!("{}/**/*.{ext}", TOPS[rng.below(TOPS.len())]),
                _ => format!("**/file{:02}*.{ext}", rng.below(20)),
            }
        } else if roll < 95 {
            format!("**/{}/**", dir_name(rng.below(300)))
        } else {
            format!(
                "{}/*/{}/*.{}",
                TOPS[rng.below(TOPS.len())],
                dir_name(rng.below(300)),
                EXTS[rng.below(EXTS.len())]
            )
        };
        out.push(glob);
    }
    out
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut tree_order = paths(&mut rng);
    let globs = globs(&mut rng, &tree_order);
    let shuffled = tree_order.clone();
    tree_order.sort();

    let file: Arc<str> = "bench.toml".into();
    let build_start = Instant::now();
    let ownership = Ownership::new(
        globs
            .iter()
            .enumerate()
            .map(|(i, g)| Rule {
                subsystem: SubsystemName::new(&format!("s{}", i % 50)).unwrap(),
                pattern: Pattern::parse(g).unwrap(),
                origin: Location {
                    file: file.clone(),
                    line: i as u32 + 1,
                    col: 1,
                },
            })
            .collect(),
    );
    let index_build = build_start.elapsed();

    let build_start = Instant::now();
    let mut builder = GlobSetBuilder::new();
    for rule in ownership.rules() {
        builder.add(
            GlobBuilder::new(rule.pattern.glob())
                .literal_separator(true)
                .build()
                .unwrap(),
        );
    }
    let baseline = builder.build().unwrap();
    let baseline_build = build_start.elapsed();

    // Same answers, path by path, before anything is timed.
    let mut resolver = ownership.resolver();
    for path in &tree_order {
        let want = baseline.matches(path).into_iter().max();
        let got = resolver.owner(path).map(|r| (r.origin.line - 1) as usize);
        assert_eq!(got, want, "disagreement on {path}");
    }

    let time = |f: &dyn Fn() -> usize| {
        median(
            (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    black_box(f());
                    start.elapsed()
                })
                .collect(),
        )
    };
    let base = time(&|| {
        tree_order
            .iter()
            .filter_map(|p| baseline.matches(p).into_iter().max())
            .count()
    });
    let ours_tree = time(&|| {
        let mut r = ownership.resolver();
        tree_order.iter().filter_map(|p| r.owner(p)).count()
    });
    let ours_random = time(&|| {
        let mut r = ownership.resolver();
        shuffled.iter().filter_map(|p| r.owner(p)).count()
    });

    let per = |d: Duration| d.as_secs_f64() * 1e9 / PATHS as f64;
    println!("ownership: {PATHS} paths x {RULES} rules, median of {RUNS} runs; answers identical");
    println!("  build: index {index_build:.2?}, baseline GlobSet {baseline_build:.2?}");
    println!(
        "  baseline GlobSet::matches().max()   {base:>10.2?}  ({:>7.0} ns/path)",
        per(base)
    );
    println!(
        "  switchyard index, tree order        {ours_tree:>10.2?}  ({:>7.0} ns/path)  {:.1}x faster",
        per(ours_tree),
        base.as_secs_f64() / ours_tree.as_secs_f64()
    );
    println!(
        "  switchyard index, random order      {ours_random:>10.2?}  ({:>7.0} ns/path)  {:.1}x faster",
        per(ours_random),
        base.as_secs_f64() / ours_random.as_secs_f64()
    );
}
