//! A generated repository of invented words, mirrored into identical copies, changed step by
//! step with a logical clock: the workload of the kill, concurrency and corruption tests.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::Rng;

/// A generated repository of text files made of invented words (with a skewed frequency, like
/// identifiers in code), mirrored into one or more identical copies. Every write sets the
/// file's modification time from a logical clock, so each change is visible to `tp index`'s
/// stat check however fast the test runs.
pub struct Corpus {
    vocab: Vec<String>,
    files: Vec<String>,
    next_file: usize,
    clock: u64,
}

impl Corpus {
    pub fn new(rng: &mut Rng) -> Corpus {
        const SYLLABLES: [&str; 24] = [
            "ka", "lo", "mi", "nu", "ra", "se", "ti", "vo", "za", "pe", "qui", "bor", "dan", "fel",
            "gom", "hix", "jun", "kel", "mox", "nav", "pry", "sul", "tev", "wyn",
        ];
        let mut seen = HashSet::new();
        let mut vocab = Vec::new();
        while vocab.len() < 600 {
            let parts = rng.range(2, 3);
            let word: String = (0..parts)
                .map(|_| SYLLABLES[rng.range(0, SYLLABLES.len() - 1)])
                .collect();
            if seen.insert(word.clone()) {
                vocab.push(word);
            }
        }
        Corpus {
            vocab,
            files: Vec::new(),
            next_file: 0,
            clock: 1_600_000_000,
        }
    }

    /// A query of three words of decreasing frequency.
    pub fn query(&self) -> String {
        format!("{} {} {}", self.vocab[3], self.vocab[25], self.vocab[90])
    }

    pub fn word(&self, rng: &mut Rng) -> &str {
        // Skewed: low indices are common, high ones rare.
        let i = (self.vocab.len() as f64 * rng.unit().powi(3)) as usize;
        &self.vocab[i.min(self.vocab.len() - 1)]
    }

    pub fn line(&self, rng: &mut Rng) -> String {
        match rng.range(0, 9) {
            0 => String::new(),
            1 | 2 => format!(
                "fn {}_{}({}: {}) -> {} {{",
                self.word(rng),
                self.word(rng),
                self.word(rng),
                self.word(rng),
                self.word(rng)
            ),
            3 => format!(
                "    let {} = {}.{}({});",
                self.word(rng),
                self.word(rng),
                self.word(rng),
                self.word(rng)
            ),
            _ => {
                let n = rng.range(3, 9);
                let words: Vec<&str> = (0..n).map(|_| self.word(rng)).collect();
                format!("// {}", words.join(" "))
            }
        }
    }

    pub fn text(&self, rng: &mut Rng, lines: usize) -> String {
        let mut s = String::new();
        for _ in 0..lines {
            s.push_str(&self.line(rng));
            s.push('\n');
        }
        s
    }

    /// Writes `rel` with `text` into every copy, all with the same new modification time.
    pub fn write(&mut self, roots: &[&Path], rel: &str, text: &str) {
        self.clock += 1;
        let mtime = UNIX_EPOCH + Duration::from_secs(self.clock);
        for root in roots {
            let p = root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, text).unwrap();
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
        }
    }

    pub fn add(&mut self, roots: &[&Path], rng: &mut Rng, lines: (usize, usize)) {
        let rel = format!("d{}/f{:05}.rs", self.next_file % 8, self.next_file);
        self.next_file += 1;
        let n = rng.range(lines.0, lines.1);
        let text = self.text(rng, n);
        self.write(roots, &rel, &text);
        self.files.push(rel);
    }

    /// Replaces a few lines of a file (and sometimes appends some).
    pub fn edit(&mut self, roots: &[&Path], rng: &mut Rng) {
        let rel = self.files[rng.range(0, self.files.len() - 1)].clone();
        let old = fs::read_to_string(roots[0].join(&rel)).unwrap();
        let mut lines: Vec<String> = old.lines().map(str::to_owned).collect();
        for _ in 0..rng.range(1, 4) {
            let i = rng.range(0, lines.len() - 1);
            lines[i] = self.line(rng);
        }
        if rng.range(0, 2) == 0 {
            for _ in 0..rng.range(1, 30) {
                lines.push(self.line(rng));
            }
        }
        let mut text = lines.join("\n");
        text.push('\n');
        self.write(roots, &rel, &text);
    }

    pub fn delete(&mut self, roots: &[&Path], rng: &mut Rng) {
        let rel = self.files.swap_remove(rng.range(0, self.files.len() - 1));
        for root in roots {
            fs::remove_file(root.join(&rel)).unwrap();
        }
    }

    /// `files` new files of `lines` lines each.
    pub fn populate(
        &mut self,
        roots: &[&Path],
        rng: &mut Rng,
        files: usize,
        lines: (usize, usize),
    ) {
        for _ in 0..files {
            self.add(roots, rng, lines);
        }
    }

    /// A random change: some edits, sometimes a few new and deleted files; every
    /// `big_every`-th change edits many files.
    pub fn change(&mut self, roots: &[&Path], rng: &mut Rng, step: usize, big_every: usize) {
        let edits = if step % big_every == big_every - 1 {
            rng.range(15, 30)
        } else {
            rng.range(1, 8)
        };
        for _ in 0..edits {
            self.edit(roots, rng);
        }
        for _ in 0..rng.range(0, 2) {
            self.add(roots, rng, (20, 150));
        }
        for _ in 0..rng.range(0, 2) {
            if self.files.len() > 10 {
                self.delete(roots, rng);
            }
        }
    }
}
