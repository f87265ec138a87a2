//! docgen: man pages and shell completions generated from the clap definitions.
//!
//! Owns turning a `clap::Command` into the files the Debian package ships, so the man page and
//! the completions can never disagree with `pagerbox --help`:
//!
//! | file                         | installed as                                            |
//! |------------------------------|---------------------------------------------------------|
//! | `man/pagerbox.1`, `man/pagerbox-SUB.1` | `/usr/share/man/man1/` (one page per visible subcommand) |
//! | `completions/pagerbox.bash`  | `/usr/share/bash-completion/completions/pagerbox`       |
//! | `completions/_pagerbox`      | `/usr/share/zsh/vendor-completions/_pagerbox`           |
//! | `completions/pagerbox.fish`  | `/usr/share/fish/vendor_completions.d/pagerbox.fish`    |
//!
//! The CLI exposes it as the hidden `pagerbox generate-docs --out DIR`; the packaging script
//! runs that on the freshly built release binary before `cargo deb`. Generating at packaging
//! time (rather than in `build.rs`) keeps the normal build fast and free of file writes
//! outside `OUT_DIR`. Hidden subcommands get no man page (clap_mangen skips them).

use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Arguments of the hidden `pagerbox generate-docs` subcommand.
///
/// Wire it in `cli` as `#[command(hide = true)] GenerateDocs(docgen::GenerateDocsArgs)` and call
/// [`run`] with `Cli::command()`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateDocsArgs {
    /// Directory to write `man/` and `completions/` into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Entry point of `pagerbox generate-docs`: writes everything (see
/// [`write_man_and_completions`]) and lists the files written on stdout, one per line, for the
/// packaging script's log. I/O errors are returned as they are.
pub fn run(args: &GenerateDocsArgs, cmd: clap::Command) -> std::io::Result<()> {
    for path in write_man_and_completions(cmd, &args.out)? {
        println!("{}", path.display());
    }
    Ok(())
}

/// The shells we ship completions for: those Debian packages vendor completion directories for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Write the man pages to `out_dir/man/` and the completions to `out_dir/completions/`,
/// creating both directories. Returns the paths written, man pages first.
///
/// `cmd` is the full clap command (`Cli::command()`); its name becomes the binary name in the
/// completions and the man page title. Existing files with the same names are overwritten.
/// Fails with the underlying I/O error if a directory cannot be created or a file written;
/// a half-written set is then left behind (the packaging script stops on the error).
pub fn write_man_and_completions(
    cmd: clap::Command,
    out_dir: &Path,
) -> std::io::Result<Vec<PathBuf>> {
    let man_dir = out_dir.join("man");
    let completion_dir = out_dir.join("completions");
    std::fs::create_dir_all(&man_dir)?;
    std::fs::create_dir_all(&completion_dir)?;

    let mut written = Vec::new();
    let bin_name = cmd.get_name().to_string();
    clap_mangen::generate_to(cmd.clone(), &man_dir)?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&man_dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    pages.sort();
    written.extend(pages);

    let mut cmd = cmd;
    for shell in SHELLS {
        written.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            bin_name.as_str(),
            &completion_dir,
        )?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    /// A stand-in with the shape of pagerbox's CLI: global option, visible and hidden
    /// subcommands.
    fn sample_cli() -> Command {
        Command::new("pagerbox")
            .about("On-call paging agent")
            .arg(
                Arg::new("config")
                    .long("config")
                    .global(true)
                    .help("Config file"),
            )
            .subcommand(Command::new("run").about("Run the daemon"))
            .subcommand(
                Command::new("modem")
                    .about("Talk to the modem")
                    .subcommand(Command::new("status").about("Show modem status")),
            )
            .subcommand(Command::new("generate-docs").hide(true))
    }

    #[test]
    fn writes_man_pages_and_three_completions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let written = write_man_and_completions(sample_cli(), dir.path()).expect("generate");

        let names: Vec<String> = written
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "man/pagerbox-modem-status.1",
                "man/pagerbox-modem.1",
                "man/pagerbox-run.1",
                "man/pagerbox.1",
                "completions/pagerbox.bash",
                "completions/_pagerbox",
                "completions/pagerbox.fish",
            ]
        );

        let page = std::fs::read_to_string(dir.path().join("man/pagerbox.1")).unwrap();
        assert!(
            page.starts_with(".ie"),
            "roff output: {}",
            &page[..40.min(page.len())]
        );
        assert!(page.contains("On\\-call paging agent"), "{page}");
        assert!(page.contains("\\-\\-config"), "{page}");
        assert!(page.contains("pagerbox\\-run(1)"), "{page}");
        assert!(
            !page.contains("generate\\-docs"),
            "hidden subcommand leaked: {page}"
        );

        let bash = std::fs::read_to_string(dir.path().join("completions/pagerbox.bash")).unwrap();
        assert!(bash.contains("complete -F _pagerbox"), "{bash}");
        assert!(bash.contains("--config"), "{bash}");
        let zsh = std::fs::read_to_string(dir.path().join("completions/_pagerbox")).unwrap();
        assert!(zsh.starts_with("#compdef pagerbox"), "{zsh}");
        let fish = std::fs::read_to_string(dir.path().join("completions/pagerbox.fish")).unwrap();
        assert!(fish.contains("complete -c pagerbox"), "{fish}");
    }

    #[test]
    fn generate_docs_args_parse_and_run() {
        use clap::{Args, FromArgMatches};
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("assets");
        let cmd = GenerateDocsArgs::augment_args(Command::new("generate-docs"));
        let matches = cmd
            .try_get_matches_from(["generate-docs", "--out", out.to_str().unwrap()])
            .expect("parse");
        let args = GenerateDocsArgs::from_arg_matches(&matches).expect("args");
        assert_eq!(args.out, out);
        run(&args, sample_cli()).expect("run");
        assert!(out.join("man/pagerbox.1").is_file());
        assert!(out.join("completions/_pagerbox").is_file());
    }

    #[test]
    fn unwritable_out_dir_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        assert!(write_man_and_completions(sample_cli(), &file).is_err());
    }
}
