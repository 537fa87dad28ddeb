use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;

use crate::support::TestRepo;

#[test]
fn guesses_subsystems_from_top_level_directories() {
    let repo = TestRepo::new();
    repo.files(&[
        "README.md",
        "src/lib.rs",
        "docs/a.md",
        ".github/workflows/ci.yml",
        "My Dir/x",
    ])
    .commit("init");
    let written = repo.run(["init", "--json"]).expect(0).json();
    assert_eq!(written["source"], "layout");
    assert_eq!(
        written["subsystems"],
        serde_json::json!(["root", "github", "my-dir", "docs", "src"])
    );
    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    assert!(text.contains("approval = \"required\""));
    repo.run(["check"]).expect(0);
    let owners = repo
        .run([
            "owners",
            "--json",
            "README.md",
            "My Dir/x",
            ".github/workflows/ci.yml",
        ])
        .expect(0)
        .json();
    assert_eq!(owners[0]["subsystem"], "root");
    assert_eq!(owners[1]["subsystem"], "my-dir");
    assert_eq!(owners[2]["subsystem"], "github");
}

#[test]
fn never_overwrites_without_force() {
    let repo = TestRepo::new();
    repo.files(&["src/a.rs"]).commit("init");
    repo.config("# mine\n");
    repo.run(["init"]).refused(
        1,
        "switchyard.toml already exists; pass --force to overwrite it",
    );
    assert_eq!(
        std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap(),
        "# mine\n"
    );
    repo.run(["init", "--force"]).expect(0);
    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    assert!(text.contains("name = \"src\""));
}

#[test]
fn works_in_an_empty_repository() {
    let repo = TestRepo::new();
    let written = repo.run(["init", "--json"]).expect(0).json();
    assert_eq!(written["subsystems"], serde_json::json!([]));
    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    assert!(text.contains("# No tracked files yet."), "{text}");
    assert_eq!(repo.run(["check", "--json"]).expect(0).json()["ok"], true);
}

#[test]
fn odd_file_names_survive_translation() {
    let repo = TestRepo::new();
    repo.files(&[
        " lead.rs",
        "trail /x",
        "src/x.rs",
        "apps/github/a",
        "apps/b",
        "a*b/c",
    ]);
    repo.file("CODEOWNERS", "* @a\n/apps/github\n");
    repo.commit("init");
    // A directory whose name is not UTF-8.
    let bad = std::ffi::OsStr::from_bytes(b"bad\xffdir");
    std::fs::create_dir(repo.root.join(bad)).unwrap();
    std::fs::write(repo.root.join(bad).join("f"), "x").unwrap();
    repo.commit("odd");
    repo.run(["init"]).expect(0);
    repo.run(["check"]).expect(0);
    let owners = repo
        .run(["owners", "--json", " lead.rs", "apps/github/a", "apps/b"])
        .expect(0)
        .json();
    assert_eq!(owners[0]["subsystem"], "a");
    assert_eq!(owners[1]["subsystem"], serde_json::Value::Null);
    assert_eq!(owners[2]["subsystem"], "a");
    // Layout mode with the same names.
    repo.run(["init", "--force"]).expect(0);
    std::fs::remove_file(repo.root.join("CODEOWNERS")).unwrap();
    repo.commit("no codeowners");
    repo.run(["init", "--force"]).expect(0);
    repo.run(["check"]).expect(0);
    let owners = repo.run(["owners", "--json", "trail /x"]).expect(0).json();
    assert_eq!(owners[0]["subsystem"], "trail");
}

/// Translating CODEOWNERS: for every tracked file, the owner set of the subsystem that
/// owns it must be exactly what GitHub assigns. The expectations are written out by hand
/// from GitHub's documented rules.
#[test]
fn translates_codeowners_file_by_file() {
    let repo = TestRepo::new();
    repo.file(
        ".github/CODEOWNERS",
        "# GitHub's own example, with the awkward cases\n\
         *                @global-owner\n\
         *.js             @js-owner\n\
         docs/*           docs@example.com\n\
         build/logs/      @doctocat\n\
         /apps/           @octocat\n\
         /apps/github\n\
         /scripts/        @doctocat @octocat\n\
         **/logs          @logs-team\n\
         /src/            @org/core\n\
         /src/auth/       @org/security\n\
         /src/auth/vendored/ @org/core\n\
         [abc].txt        @never\n\
         !keep.txt        @never\n",
    );
    // The second CODEOWNERS location must lose to the first.
    repo.file("CODEOWNERS", "* @loser\n");
    let tracked = [
        "README.md",
        "web/app.js",
        "docs/index.md",
        "docs/deep/page.md",
        "build/logs/out.log",
        "x/build/logs/y.log",
        "apps/web/main.go",
        "apps/github/main.go",
        "scripts/deploy.sh",
        "var/logs/a",
        "src/main.rs",
        "src/auth/login.rs",
        "src/auth/vendored/lib.rs",
        "src/auth/ui.js",
        "a.txt",
    ];
    repo.files(&tracked).commit("init");
    let run = repo.run(["init"]).expect(0);
    assert!(
        run.stderr()
            .contains(".github/CODEOWNERS:13: pattern \"[abc].txt\""),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr()
            .contains(".github/CODEOWNERS:14: pattern \"!keep.txt\"")
    );
    repo.run(["check"]).expect(0);

    let text = std::fs::read_to_string(repo.root.join("switchyard.toml")).unwrap();
    let owners_of = owner_sets(&text);
    let all = repo.run(["owners", "--all", "--json"]).expect(0).json();
    let got: BTreeMap<String, Option<String>> = all["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let sub = f["subsystem"].as_str().map(|s| owners_of[s].clone());
            (f["path"].as_str().unwrap().to_owned(), sub)
        })
        .collect();
    let want = |path: &str| -> Option<&str> {
        Some(match path {
            "README.md" | "docs/deep/page.md" | "a.txt" => "@global-owner",
            "web/app.js" => "@js-owner",
            "docs/index.md" => "docs@example.com",
            "build/logs/out.log" | "x/build/logs/y.log" | "var/logs/a" => "@logs-team",
            "apps/web/main.go" => "@octocat",
            "apps/github/main.go" => return None,
            "scripts/deploy.sh" => "@doctocat @octocat",
            "src/main.rs" | "src/auth/vendored/lib.rs" => "@org/core",
            "src/auth/login.rs" | "src/auth/ui.js" => "@org/security",
            ".github/CODEOWNERS" | "CODEOWNERS" => "@global-owner",
            other => panic!("unexpected {other}"),
        })
    };
    assert_eq!(got.len(), tracked.len() + 2);
    for (path, owners) in &got {
        assert_eq!(owners.as_deref(), want(path), "{path}");
    }
}

/// Reads `# owners: ...` comments back from the written config: subsystem -> owners.
fn owner_sets(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut owners = None;
    for line in text.lines() {
        if let Some(o) = line.strip_prefix("# owners: ") {
            owners = Some(o.to_owned());
        } else if let Some(name) = line.strip_prefix("name = ") {
            out.insert(name.trim_matches('"').to_owned(), owners.take().unwrap());
        }
    }
    out
}
