//! Resolution of the data directory and the models cache for each platform and override.

use super::*;

/// Platform, variables, expected data directory.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

fn resolve(os: &str, vars: &[(&str, &str)]) -> Result<PathBuf, PathsError> {
    DataDir::resolve(&Env::with(os, Path::new("/projects/app"), vars))
        .map(|d| d.root().to_path_buf())
}

#[test]
fn the_data_directory_follows_the_platform_and_the_override() {
    let cases: &[Case] = &[
        (
            "macos",
            &[("HOME", "/Users/ann")],
            "/Users/ann/Library/Application Support/Adapt",
        ),
        (
            "linux",
            &[("HOME", "/home/ann")],
            "/home/ann/.local/share/adapt",
        ),
        (
            "linux",
            &[("HOME", "/home/ann"), ("XDG_DATA_HOME", "/xdg")],
            "/xdg/adapt",
        ),
        // A relative XDG_DATA_HOME is invalid by the spec and ignored.
        (
            "linux",
            &[("HOME", "/home/ann"), ("XDG_DATA_HOME", "rel")],
            "/home/ann/.local/share/adapt",
        ),
        (
            "linux",
            &[("HOME", "/h"), ("ADAPT_DATA_DIR", "/data")],
            "/data",
        ),
        ("macos", &[("ADAPT_DATA_DIR", "mine")], "/projects/app/mine"),
        (
            "linux",
            &[("HOME", "/h"), ("ADAPT_DATA_DIR", "")],
            "/h/.local/share/adapt",
        ),
    ];
    for (os, vars, expected) in cases {
        assert_eq!(
            resolve(os, vars).unwrap(),
            Path::new(expected),
            "{os} {vars:?}"
        );
    }
}

#[test]
fn no_home_is_an_error_that_names_the_override() {
    let err = resolve("linux", &[]).unwrap_err();
    assert_eq!(err.code(), "paths.no_home");
    assert!(err.to_string().contains("ADAPT_DATA_DIR"));
}

#[test]
fn the_data_directory_lays_out_its_folders() {
    let data = DataDir::at("/d");
    assert_eq!(data.database(), Path::new("/d/adapt.db"));
    assert_eq!(data.runs(), Path::new("/d/runs"));
    assert_eq!(data.adapters(), Path::new("/d/adapters"));
    assert_eq!(data.kv_caches(), Path::new("/d/kv-caches"));
}

#[test]
fn the_models_cache_is_flag_then_env_then_setting_then_checkout_then_data() {
    let cwd = tempfile::tempdir().unwrap();
    let data = DataDir::at("/d");
    let env = |vars: &[(&str, &str)]| Env::with("linux", cwd.path(), vars);
    let with_env = env(&[("ADAPT_MODELS_DIR", "/env")]);
    let flag = Some(Path::new("/flag"));
    let setting = Some(Path::new("/setting"));
    assert_eq!(
        models_dir(&with_env, &data, flag, setting),
        Path::new("/flag")
    );
    assert_eq!(
        models_dir(&with_env, &data, None, setting),
        Path::new("/env")
    );
    assert_eq!(
        models_dir(&env(&[]), &data, None, setting),
        Path::new("/setting")
    );
    assert_eq!(
        models_dir(&env(&[]), &data, None, None),
        Path::new("/d/models")
    );
    std::fs::create_dir(cwd.path().join("models-cache")).unwrap();
    assert_eq!(
        models_dir(&env(&[]), &data, None, None),
        cwd.path().join("models-cache")
    );
    let relative = env(&[("ADAPT_MODELS_DIR", "m")]);
    assert_eq!(
        models_dir(&relative, &data, None, None),
        cwd.path().join("m")
    );
}

#[test]
fn dataset_cache_follows_the_cache_variables() {
    let cwd = Path::new("/work");
    let at = |os: &str, vars: &[(&str, &str)]| dataset_cache(&Env::with(os, cwd, vars));
    assert_eq!(
        at("linux", &[("HOME", "/home/a"), ("ADAPT_CACHE_DIR", "c")]).unwrap(),
        Path::new("/work/c/datasets")
    );
    assert_eq!(
        at("linux", &[("HOME", "/home/a"), ("XDG_CACHE_HOME", "/x")]).unwrap(),
        Path::new("/x/adapt/datasets")
    );
    assert_eq!(
        at("linux", &[("HOME", "/home/a")]).unwrap(),
        Path::new("/home/a/.cache/adapt/datasets")
    );
    assert_eq!(
        at("macos", &[("HOME", "/Users/a")]).unwrap(),
        Path::new("/Users/a/Library/Caches/Adapt/datasets")
    );
    assert_eq!(at("linux", &[]).unwrap_err(), PathsError::NoHome);
}
