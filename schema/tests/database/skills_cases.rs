//! `castellan_schema::skills`: publishing (content-addressed, immutable versions), yanking, the
//! catalog reads, the generation counter and the fetch log.

use castellan_schema::DatabaseConnection;
use castellan_schema::entity::{skill_blobs, skill_fetches, skill_files, skill_versions, skills as skill_entity};
use castellan_schema::retention::{self, PruneLimits};
use castellan_schema::skills::{
    self, FileEntry, NewFetch, NewFile, NewVersion, PublishError, Published, VersionSummary, YankOutcome,
};
use castellan_schema::truncate_to_micros;
use sea_orm::{EntityTrait, PaginatorTrait};
use sha2::{Digest, Sha256};

use crate::support::{TestDatabase, instant};

/// A file to publish, owning its bytes.
struct OwnedFile {
    path: String,
    sha256: String,
    bytes: Vec<u8>,
}

fn owned_files(entries: &[(&str, &str)]) -> Vec<OwnedFile> {
    entries
        .iter()
        .map(|(path, text)| OwnedFile {
            path: (*path).to_owned(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            bytes: text.as_bytes().to_vec(),
        })
        .collect()
}

/// A stand-in for the daemon's digest: any function of the paths and contents will do here.
fn digest_of(files: &[OwnedFile]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.path.as_bytes());
        hasher.update([0]);
        hasher.update(file.sha256.as_bytes());
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Publishes `entries` as skill `name` at `version`, published at `instant(at)`.
async fn publish(
    db: &DatabaseConnection,
    name: &str,
    version: Option<&str>,
    entries: &[(&str, &str)],
    at: i64,
) -> Result<Published, PublishError> {
    let owned = owned_files(entries);
    let files: Vec<NewFile<'_>> =
        owned.iter().map(|file| NewFile { path: &file.path, sha256: &file.sha256, bytes: &file.bytes }).collect();
    let digest = digest_of(&owned);
    skills::publish(
        db,
        NewVersion {
            name,
            version,
            digest: &digest,
            description: "Writes release notes",
            frontmatter: r#"{"name":"release-notes"}"#,
            signature: None,
            signed_by: None,
            files: &files,
            published_by: Some("cli"),
            now: instant(at),
        },
    )
    .await
}

fn stored(version: &str) -> Published {
    Published::Stored { version: version.to_owned() }
}

fn unchanged(version: &str) -> Published {
    Published::Unchanged { version: version.to_owned() }
}

/// Rows in (skills, skill_versions, skill_files, skill_blobs), and the generation.
async fn counts(db: &DatabaseConnection) -> (u64, u64, u64, u64, i64) {
    (
        skill_entity::Entity::find().count(db).await.expect("count skills"),
        skill_versions::Entity::find().count(db).await.expect("count versions"),
        skill_files::Entity::find().count(db).await.expect("count files"),
        skill_blobs::Entity::find().count(db).await.expect("count blobs"),
        skills::generation(db).await.expect("generation"),
    )
}

fn names_and_versions(summaries: &[VersionSummary]) -> Vec<(&str, &str)> {
    summaries.iter().map(|summary| (summary.name.as_str(), summary.version.as_str())).collect()
}

const SKILL_MD_ONE: &str = "---\nname: release-notes\n---\nWrite notes.\n";
const SKILL_MD_TWO: &str = "---\nname: release-notes\n---\nWrite better notes.\n";
const TEMPLATE: &str = "## Changes\n";

pub async fn skills_publish_stores_files_once_and_reads_them_back(database: TestDatabase) {
    let db = &database.db;
    let first = [("SKILL.md", SKILL_MD_ONE), ("templates/notes.md", TEMPLATE)];
    let second = [("templates/notes.md", TEMPLATE), ("SKILL.md", SKILL_MD_TWO)];
    assert_eq!(publish(db, "release-notes", None, &first, 0).await.expect("first"), stored("1"));
    assert_eq!(publish(db, "release-notes", None, &second, 10).await.expect("second"), stored("2"));
    let (skill_rows, version_rows, file_rows, blob_rows, _) = counts(db).await;
    assert_eq!((skill_rows, version_rows, file_rows), (1, 2, 4), "one skill, two versions of two files each");
    assert_eq!(blob_rows, 3, "the template both versions share is stored once");

    let latest = skills::find_version(db, "release-notes", None).await.expect("find").expect("a latest version");
    assert_eq!(
        (latest.version.as_str(), latest.file_count, latest.total_bytes, latest.yanked, latest.published_at),
        ("2", 2, (SKILL_MD_TWO.len() + TEMPLATE.len()) as i64, false, truncate_to_micros(instant(10))),
        "the summary of the latest version"
    );
    assert_eq!(
        (latest.description.as_str(), latest.frontmatter.as_str(), latest.published_by.as_deref()),
        ("Writes release notes", r#"{"name":"release-notes"}"#, Some("cli")),
        "metadata reads back as written"
    );
    assert_eq!(latest.digest, digest_of(&owned_files(&second)), "the digest as given");
    let entries = skills::files_of(db, latest.id).await.expect("files");
    let sha = |text: &str| hex::encode(Sha256::digest(text.as_bytes()));
    assert_eq!(
        entries,
        vec![
            FileEntry { path: "SKILL.md".into(), sha256: sha(SKILL_MD_TWO), size: SKILL_MD_TWO.len() as i64 },
            FileEntry { path: "templates/notes.md".into(), sha256: sha(TEMPLATE), size: TEMPLATE.len() as i64 },
        ],
        "files sorted by path"
    );
    assert_eq!(
        skills::read_file(db, latest.id, "SKILL.md").await.expect("read"),
        Some(SKILL_MD_TWO.as_bytes().to_vec()),
        "read_file returns the bytes"
    );
    assert_eq!(skills::read_file(db, latest.id, "missing.md").await.expect("read"), None, "no such file");
    let all = skills::read_all_files(db, latest.id).await.expect("read all");
    assert_eq!(
        all.iter().map(|(entry, bytes)| (entry.path.as_str(), bytes.as_slice())).collect::<Vec<_>>(),
        vec![("SKILL.md", SKILL_MD_TWO.as_bytes()), ("templates/notes.md", TEMPLATE.as_bytes())],
        "read_all_files returns every file with its bytes, by path"
    );
    let oldest = skills::find_version(db, "release-notes", Some("1")).await.expect("find").expect("version 1");
    assert_eq!(
        skills::read_file(db, oldest.id, "SKILL.md").await.expect("read"),
        Some(SKILL_MD_ONE.as_bytes().to_vec()),
        "the older version keeps its own content"
    );
    assert_eq!(skills::find_version(db, "release-notes", Some("9")).await.expect("find"), None, "unknown version");
    assert_eq!(skills::find_version(db, "unknown", None).await.expect("find"), None, "unknown skill");
    assert!(skills::versions_of(db, "unknown").await.expect("versions").is_empty(), "no versions");
}

pub async fn skills_republishing_the_same_content_changes_nothing(database: TestDatabase) {
    let db = &database.db;
    let content = [("SKILL.md", SKILL_MD_ONE)];
    assert_eq!(publish(db, "notes", None, &content, 0).await.expect("first"), stored("1"));
    let before = counts(db).await;
    assert_eq!(publish(db, "notes", None, &content, 1).await.expect("again"), unchanged("1"), "no version given");
    assert_eq!(publish(db, "notes", Some("1"), &content, 2).await.expect("given"), unchanged("1"), "the same one");
    assert_eq!(counts(db).await, before, "no row and no generation change");

    assert_eq!(publish(db, "notes", Some("1.0.0"), &content, 3).await.expect("new"), stored("1.0.0"));
    let (_, versions, files, blobs, _) = counts(db).await;
    assert_eq!((versions, files, blobs), (2, 2, 1), "a new given version of the same content: a new row, one blob");
    assert_eq!(publish(db, "notes", Some("1.0.0"), &content, 4).await.expect("again"), unchanged("1.0.0"));
    assert_eq!(publish(db, "notes", None, &content, 5).await.expect("again"), unchanged("1.0.0"), "the latest one");
}

pub async fn skills_a_taken_version_with_other_content_conflicts(database: TestDatabase) {
    let db = &database.db;
    publish(db, "notes", Some("1.0.0"), &[("SKILL.md", SKILL_MD_ONE)], 0).await.expect("first");
    let before = counts(db).await;
    let error = publish(db, "notes", Some("1.0.0"), &[("SKILL.md", SKILL_MD_TWO), ("extra.md", TEMPLATE)], 1)
        .await
        .expect_err("a taken version");
    assert_eq!(error, PublishError::Conflict { name: "notes".into(), version: "1.0.0".into() });
    assert!(error.to_string().contains("bump metadata.version"), "the message says what to do: {error}");
    assert_eq!(counts(db).await, before, "nothing written: no version, file, blob or generation");

    skills::yank(db, "notes", "1.0.0", instant(2)).await.expect("yank");
    let before = counts(db).await;
    let error = publish(db, "notes", Some("1.0.0"), &[("SKILL.md", SKILL_MD_ONE)], 3).await.expect_err("yanked");
    assert_eq!(error, PublishError::Yanked { name: "notes".into(), version: "1.0.0".into() });
    assert!(error.to_string().contains("set a new metadata.version"), "the message says what to do: {error}");
    assert_eq!(counts(db).await, before, "nothing written");
}

pub async fn skills_files_that_do_not_match_their_hash_are_refused(database: TestDatabase) {
    let db = &database.db;
    let wrong_hash = [NewFile { path: "SKILL.md", sha256: &"0".repeat(64), bytes: b"hello" }];
    let hello = hex::encode(Sha256::digest(b"hello"));
    let twice = [
        NewFile { path: "SKILL.md", sha256: &hello, bytes: b"hello" },
        NewFile { path: "SKILL.md", sha256: &hello, bytes: b"hello" },
    ];
    let empty_path = [NewFile { path: "", sha256: &hello, bytes: b"hello" }];
    for (files, why) in [(&wrong_hash[..], "a wrong hash"), (&twice[..], "a path twice"), (&empty_path[..], "no path")]
    {
        let result = skills::publish(
            db,
            NewVersion {
                name: "bad",
                version: None,
                digest: "sha256:00",
                description: "",
                frontmatter: "{}",
                signature: None,
                signed_by: None,
                files,
                published_by: None,
                now: instant(0),
            },
        )
        .await;
        assert!(matches!(result, Err(PublishError::InvalidFile { .. })), "{why}: {result:?}");
    }
    assert_eq!(counts(db).await, (0, 0, 0, 0, 0), "nothing written");
}

pub async fn skills_integer_versions_count_up(database: TestDatabase) {
    let db = &database.db;
    for (index, text) in ["one", "two", "three"].into_iter().enumerate() {
        let published = publish(db, "counter", None, &[("SKILL.md", text)], index as i64).await.expect("publish");
        assert_eq!(published, stored(&(index + 1).to_string()), "publish {index}");
    }
    publish(db, "counter", Some("7.1"), &[("SKILL.md", "dotted")], 3).await.expect("a non-integer version");
    skills::yank(db, "counter", "3", instant(4)).await.expect("yank");
    assert_eq!(
        publish(db, "counter", None, &[("SKILL.md", "four")], 5).await.expect("publish"),
        stored("4"),
        "a yanked number stays taken; non-integer versions do not count"
    );
    let refused = publish(db, "counter", None, &[("SKILL.md", "three")], 6).await.expect_err("yanked content");
    assert!(matches!(refused, PublishError::Yanked { ref version, .. } if version == "3"), "{refused:?}");
    assert_eq!(
        publish(db, "counter", None, &[("SKILL.md", "five")], 6).await.expect("publish"),
        stored("5"),
        "the content of a yanked version does not come back under a new number"
    );
    assert_eq!(publish(db, "other", None, &[("SKILL.md", "one")], 7).await.expect("other"), stored("1"), "per skill");
    let versions = skills::versions_of(db, "counter").await.expect("versions");
    assert_eq!(
        versions.iter().map(|version| (version.version.as_str(), version.yanked)).collect::<Vec<_>>(),
        vec![("1", false), ("2", false), ("3", true), ("7.1", false), ("4", false), ("5", false)],
        "oldest first, yanked included"
    );
    assert_eq!(versions[2].yanked_at, Some(truncate_to_micros(instant(4))), "when it was yanked");
}

pub async fn skills_yanked_versions_leave_the_latest_list(database: TestDatabase) {
    let db = &database.db;
    publish(db, "beta", None, &[("SKILL.md", "b1")], 0).await.expect("beta 1");
    publish(db, "alpha", None, &[("SKILL.md", "a1")], 1).await.expect("alpha 1");
    publish(db, "alpha", Some("0.9.0"), &[("SKILL.md", "a2")], 2).await.expect("alpha 0.9.0");
    publish(db, "gamma", None, &[("SKILL.md", "g1")], 3).await.expect("gamma 1");
    let latest = skills::latest_versions(db).await.expect("latest");
    assert_eq!(
        names_and_versions(&latest),
        vec![("alpha", "0.9.0"), ("beta", "1"), ("gamma", "1")],
        "by name; the most recently published version, whatever its number"
    );

    assert_eq!(skills::yank(db, "alpha", "0.9.0", instant(4)).await.expect("yank"), YankOutcome::Yanked);
    assert_eq!(skills::yank(db, "alpha", "0.9.0", instant(5)).await.expect("again"), YankOutcome::AlreadyYanked);
    assert_eq!(skills::yank(db, "alpha", "2", instant(5)).await.expect("unknown"), YankOutcome::NotFound);
    assert_eq!(skills::yank(db, "delta", "1", instant(5)).await.expect("unknown"), YankOutcome::NotFound);
    assert_eq!(skills::yank(db, "gamma", "1", instant(6)).await.expect("yank"), YankOutcome::Yanked);
    let latest = skills::latest_versions(db).await.expect("latest");
    assert_eq!(
        names_and_versions(&latest),
        vec![("alpha", "1"), ("beta", "1")],
        "alpha falls back to its previous version; gamma, all yanked, is absent"
    );
    let alpha = skills::find_version(db, "alpha", None).await.expect("find").expect("alpha");
    assert_eq!(alpha.version, "1", "find_version(None) skips the yanked version");
    let yanked = skills::find_version(db, "alpha", Some("0.9.0")).await.expect("find").expect("by version");
    assert_eq!(
        (yanked.yanked, yanked.yanked_at),
        (true, Some(truncate_to_micros(instant(4)))),
        "found by its version, marked yanked, with the first yank's time"
    );
    assert_eq!(skills::find_version(db, "gamma", None).await.expect("find"), None, "no version left");
    // The files of the latest versions, in one read, are what files_of gives for each.
    let latest = skills::latest_versions(db).await.expect("latest");
    let all = skills::files_of_latest_versions(db).await.expect("files of the latest");
    assert_eq!(all.len(), latest.len(), "one entry per latest version, none for yanked ones");
    for version in &latest {
        assert_eq!(
            all.get(&version.id),
            Some(&skills::files_of(db, version.id).await.expect("files")),
            "{}",
            version.name
        );
    }
    assert_eq!(skills::versions_of(db, "gamma").await.expect("versions").len(), 1, "but it is still listed");
}

pub async fn skills_generation_changes_only_when_the_catalog_does(database: TestDatabase) {
    let db = &database.db;
    let generation = || skills::generation(db);
    let start = generation().await.expect("generation");
    assert_eq!(start, 0, "nothing published yet");
    publish(db, "notes", Some("1"), &[("SKILL.md", "one")], 0).await.expect("publish");
    let published = generation().await.expect("generation");
    assert_ne!(published, start, "a publish changes it");
    publish(db, "notes", Some("1"), &[("SKILL.md", "one")], 1).await.expect("unchanged");
    publish(db, "notes", Some("1"), &[("SKILL.md", "other")], 2).await.expect_err("conflict");
    assert_eq!(skills::yank(db, "notes", "2", instant(3)).await.expect("yank"), YankOutcome::NotFound);
    assert_eq!(generation().await.expect("generation"), published, "unchanged, refused and missing: no change");
    skills::yank(db, "notes", "1", instant(4)).await.expect("yank");
    let yanked = generation().await.expect("generation");
    assert_ne!(yanked, published, "a yank changes it");
    assert_eq!(skills::yank(db, "notes", "1", instant(5)).await.expect("again"), YankOutcome::AlreadyYanked);
    assert_eq!(generation().await.expect("generation"), yanked, "a second yank changes nothing");
    publish(db, "notes", None, &[("SKILL.md", "two")], 6).await.expect("publish");
    assert_ne!(generation().await.expect("generation"), yanked, "another publish changes it");
}

pub async fn skills_fetches_are_recorded_newest_first(database: TestDatabase) {
    let db = &database.db;
    let fetch = |version: &'static str, via: &'static str, user_id: Option<&'static str>, at: i64| NewFetch {
        skill: "notes",
        version,
        user_id,
        via,
        trace_id: Some("trace-1"),
        at: instant(at),
    };
    skills::record_fetch(db, fetch("1", "mcp", Some("alice"), 0)).await.expect("record");
    skills::record_fetch(db, fetch("2", "api", None, 20)).await.expect("record");
    skills::record_fetch(db, fetch("1", "sync", Some("anonymous"), 10)).await.expect("record");
    let recent = skills::recent_fetches(db, 10).await.expect("recent");
    assert_eq!(
        recent.iter().map(|row| (row.version.as_str(), row.via.as_str(), row.user_id.as_deref())).collect::<Vec<_>>(),
        vec![("2", "api", None), ("1", "sync", Some("anonymous")), ("1", "mcp", Some("alice"))],
        "newest first by time"
    );
    assert_eq!(
        (recent[0].skill.as_str(), recent[0].trace_id.as_deref(), recent[0].at),
        ("notes", Some("trace-1"), truncate_to_micros(instant(20))),
        "a row reads back as written"
    );
    assert_eq!(skills::recent_fetches(db, 1).await.expect("one").len(), 1, "limit");

    let anonymous =
        PruneLimits { older_than: instant(30), forwarded_up_to: None, batch: 10, only_user: Some("anonymous") };
    assert_eq!(retention::prune_skill_fetches(db, anonymous).await.expect("prune"), 1, "only the anonymous fetch");
    let old = PruneLimits { older_than: instant(15), forwarded_up_to: None, batch: 1, only_user: None };
    assert_eq!(retention::prune_skill_fetches(db, old).await.expect("prune"), 1, "the fetch at 0 s");
    let left = skill_fetches::Entity::find().all(db).await.expect("rows");
    assert_eq!(left.iter().map(|row| row.version.as_str()).collect::<Vec<_>>(), vec!["2"], "the young fetch stays");
}

pub async fn skills_concurrent_publishes_agree(database: TestDatabase) {
    let db = &database.db;
    let race = |name: &'static str, version: Option<&'static str>, same_content: bool| {
        let mut publishes = tokio::task::JoinSet::new();
        for replica in 0..4 {
            let db = db.clone();
            let text = if same_content { "shared".to_owned() } else { format!("replica {replica}") };
            publishes.spawn(async move { publish(&db, name, version, &[("SKILL.md", &text)], replica).await });
        }
        publishes.join_all()
    };

    let results = race("same", None, true).await;
    let stored_count = results.iter().filter(|result| matches!(result, Ok(Published::Stored { .. }))).count();
    let unchanged_count = results.iter().filter(|result| matches!(result, Ok(Published::Unchanged { .. }))).count();
    assert_eq!((stored_count, unchanged_count), (1, 3), "one stores, three find it: {results:?}");
    assert!(results.iter().all(|result| result.as_ref().is_ok_and(|published| published.version() == "1")));
    assert_eq!(skills::versions_of(db, "same").await.expect("versions").len(), 1, "exactly one version row");

    let results = race("different", None, false).await;
    let mut versions: Vec<String> =
        results.iter().map(|result| result.as_ref().expect("stored").version().to_owned()).collect();
    versions.sort();
    assert_eq!(versions, ["1", "2", "3", "4"], "four contents get four numbers: {results:?}");
    assert!(results.iter().all(|result| matches!(result, Ok(Published::Stored { .. }))), "{results:?}");

    let results = race("given", Some("1.0.0"), false).await;
    let stored_count = results.iter().filter(|result| matches!(result, Ok(Published::Stored { .. }))).count();
    let conflicts = results.iter().filter(|result| matches!(result, Err(PublishError::Conflict { .. }))).count();
    assert_eq!((stored_count, conflicts), (1, 3), "one takes 1.0.0, three conflict: {results:?}");
    assert_eq!(skills::versions_of(db, "given").await.expect("versions").len(), 1, "exactly one version row");
}
