//! The files people bring: CSVs written by pandas and by R (a first column of row numbers
//! without a name), mlx-lm's data folder, and files of other kinds, which are refused before
//! anything is read.

use std::path::Path;

use adapt_data::{CsvOptions, Example, ImportOptions, Importer, PrepareInputs};

fn rows(path: &Path, csv: CsvOptions) -> Vec<(String, String)> {
    let opts = ImportOptions {
        csv,
        ..ImportOptions::default()
    };
    Importer::open(path, &opts)
        .unwrap()
        .map(|r| match r.unwrap().example {
            Example::Completion { prompt, completion } => (prompt, completion),
            other => panic!("not a completion: {other:?}"),
        })
        .collect()
}

fn columns(path: &Path) -> Vec<String> {
    let importer = Importer::open(path, &ImportOptions::default()).unwrap();
    importer.csv_mapping().unwrap().columns.clone()
}

#[test]
fn an_unnamed_index_column_is_named_as_pandas_names_it_and_left_out_of_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    // `df.to_csv(path)` in pandas: the index first, under an empty name.
    let pandas = dir.path().join("pandas.csv");
    std::fs::write(&pandas, ",class,age,survived\n0,3,22,no\n1,1,38,yes\n").unwrap();
    // `write.csv(df, path)` in R: row names first, under "", every field quoted.
    let r = dir.path().join("r.csv");
    std::fs::write(
        &r,
        "\"\",\"class\",\"age\",\"survived\"\r\n\"1\",\"3\",\"22\",\"no\"\r\n\"2\",\"1\",\"38\",\"yes\"\r\n",
    )
    .unwrap();
    for file in [&pandas, &r] {
        assert_eq!(
            columns(file),
            ["Unnamed: 0", "class", "age", "survived"],
            "{}",
            file.display()
        );
        assert_eq!(
            rows(file, CsvOptions::default()),
            [
                ("class: 3\nage: 22".to_string(), "no".to_string()),
                ("class: 1\nage: 38".to_string(), "yes".to_string()),
            ],
            "{}",
            file.display()
        );
    }
    // A template may still use it.
    let with_index = CsvOptions {
        prompt_template: Some("Passenger {{ row[\"Unnamed: 0\"] }}, class {{ class }}".into()),
        completion_column: Some("survived".into()),
        ..CsvOptions::default()
    };
    assert_eq!(rows(&r, with_index)[1].0, "Passenger 2, class 1");
}

#[test]
fn unnamed_columns_in_the_middle_keep_their_position_and_a_clash_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gaps.csv");
    std::fs::write(&file, "question, ,answer,\nWhy?,x,Because.,y\n").unwrap();
    assert_eq!(
        columns(&file),
        ["question", "Unnamed: 1", "answer", "Unnamed: 3"]
    );
    assert_eq!(
        rows(&file, CsvOptions::default()),
        [("question: Why?".to_string(), "Because.".to_string())]
    );
    // A column already called so, and an empty one that pandas would name the same.
    let clash = dir.path().join("clash.csv");
    std::fs::write(&clash, "Unnamed: 1,,b\n1,2,3\n").unwrap();
    let e = Importer::open(&clash, &ImportOptions::default())
        .err()
        .unwrap();
    assert_eq!(e.code(), "data.csv_header");
    assert!(e.to_string().contains("'Unnamed: 1' appears twice"), "{e}");
}

#[test]
fn only_csv_tsv_and_jsonl_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    for (name, hint) in [
        ("chats.json", "rename it .jsonl"),
        ("notes.txt", "save the data as one of those"),
        ("noextension", "save the data as one of those"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, "{\"text\": \"hello\"}\n").unwrap();
        let e = Importer::open(&path, &ImportOptions::default())
            .err()
            .unwrap();
        assert_eq!(e.code(), "data.file_type", "{name}");
        assert!(e.to_string().contains(hint), "{name}: {e}");
        assert!(e.to_string().contains(name), "{e}");
    }
    let e = Importer::open(dir.path(), &ImportOptions::default())
        .err()
        .unwrap();
    assert_eq!(e.code(), "data.file_type");
    assert!(e.to_string().contains("train.jsonl"), "{e}");
    let path = dir.path().join("chats.JSONL");
    std::fs::write(&path, "{\"text\": \"hello\"}\n").unwrap();
    assert_eq!(
        Importer::open(&path, &ImportOptions::default())
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn an_mlx_lm_data_folder_gives_its_splits() {
    let dir = tempfile::tempdir().unwrap();
    let line = "{\"text\": \"hello\"}\n";
    let e = PrepareInputs::from_folder(dir.path(), 3).unwrap_err();
    assert_eq!(e.code(), "data.folder");
    assert!(e.to_string().contains("no train.jsonl"), "{e}");
    std::fs::write(dir.path().join("train.jsonl"), line).unwrap();
    let e = PrepareInputs::from_folder(dir.path(), 3).unwrap_err();
    assert!(e.to_string().contains("no valid.jsonl"), "{e}");
    std::fs::write(dir.path().join("valid.jsonl"), line).unwrap();
    let inputs = PrepareInputs::from_folder(dir.path(), 3).unwrap();
    assert_eq!(inputs.train, dir.path().join("train.jsonl"));
    assert_eq!(inputs.valid, Some(dir.path().join("valid.jsonl")));
    assert_eq!(inputs.test, None);
    assert!(!inputs.splits_by_ratio());
    std::fs::write(dir.path().join("test.jsonl"), line).unwrap();
    let inputs = PrepareInputs::from_folder(dir.path(), 3).unwrap();
    assert_eq!(inputs.test, Some(dir.path().join("test.jsonl")));
    assert_eq!(inputs.ratios.seed, 3);
}
