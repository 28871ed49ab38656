"""The command line, driven in-process through ``main(argv)``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from parley.cli.main import main
from parley.starter import STARTER_FILES


def test_init_then_validate_should_exit_zero(tmp_path, monkeypatch, capsys):
    assert main(["init", "--no-prompt", str(tmp_path / "bot")]) == 0
    for name in STARTER_FILES:
        assert (tmp_path / "bot" / name).is_file()
    monkeypatch.chdir(tmp_path / "bot")
    assert main(["data", "validate", "--fail-on-warnings"]) == 0
    out = capsys.readouterr().out
    assert "Validation passed: 0 errors, 0 warning(s)." in out
    assert "7  intents" in out and "4  stories" in out


def test_init_should_never_overwrite(tmp_path, capsys):
    assert main(["init", "--no-prompt", str(tmp_path)]) == 0
    assert main(["init", "--no-prompt", str(tmp_path)]) == 1
    assert "config.yml already exists; parley init never overwrites files" in capsys.readouterr().err


def test_validate_should_exit_one_and_name_the_line_on_errors(tmp_path, monkeypatch, capsys):
    main(["init", "--no-prompt", str(tmp_path)])
    stories = tmp_path / "data" / "stories.yml"
    stories.write_text(stories.read_text().replace("action: utter_greet", "action: utter_gret"))
    monkeypatch.chdir(tmp_path)
    assert main(["data", "validate"]) == 1
    out = capsys.readouterr().out
    assert "data/stories.yml:7: error: the action 'utter_gret' is not in the domain. " \
           "Did you mean 'utter_greet'?" in out
    assert "Validation failed: 1 error(s)" in out


def test_validate_should_fail_on_warnings_when_asked(tmp_path, monkeypatch, capsys):
    main(["init", "--no-prompt", str(tmp_path)])
    domain = tmp_path / "domain.yml"
    domain.write_text(domain.read_text().replace("  - ask_watering\n", "  - ask_watering\n  - spare\n"))
    monkeypatch.chdir(tmp_path)
    assert main(["data", "validate"]) == 0
    assert main(["data", "validate", "--fail-on-warnings"]) == 1
    assert "the intent 'spare' is in the domain but" in capsys.readouterr().out


def test_validate_should_report_broken_yaml_with_file_and_line(tmp_path, monkeypatch, capsys):
    main(["init", "--no-prompt", str(tmp_path)])
    (tmp_path / "data" / "nlu.yml").write_text("nlu:\n- intent: greet\n  examples: [hi\n")
    monkeypatch.chdir(tmp_path)
    assert main(["data", "validate"]) == 1
    assert "data/nlu.yml:3: error: invalid YAML" in capsys.readouterr().err  # the open [


def test_no_command_should_print_help_and_exit_two(capsys):
    assert main([]) == 2
    assert "usage: parley" in capsys.readouterr().out


@pytest.mark.parametrize("module", ["parley", "parley.cli.main"])
def test_module_entry_point_should_run(tmp_path, module):
    # `python -m parley` as `python -m rasa`: what a user tries without the script on PATH.
    result = subprocess.run([sys.executable, "-m", module, "--version"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("parley ")


def test_importing_parley_should_stay_light():
    code = ("import sys, parley, parley.data.importer, parley.data.validation; "
            "heavy = [m for m in ('torch', 'sklearn', 'tensorflow') if m in sys.modules]; "
            "print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_command_line_should_import_what_a_command_needs_when_it_runs():
    """Every `parley train` imports the command line: not the evaluation, nor validation's
    story-conflict check (what `parley test` and `parley data validate` need)."""
    code = ("import sys, parley.cli.main; "
            "print([m for m in ('parley.evaluation.run', 'parley.dialogue.conflicts', "
            "'parley.data.validation', 'torch') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    from parley.cli import test_cmd
    from parley.evaluation import run

    assert test_cmd.DEFAULT_RESULTS == run.DEFAULT_RESULTS


@pytest.mark.parametrize("argv", [["data", "validate", "--data", "missing-folder"]])
def test_missing_paths_should_be_a_clear_error(tmp_path, monkeypatch, capsys, argv):
    main(["init", "--no-prompt", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    assert "the training data path 'missing-folder' does not exist" in capsys.readouterr().err


def test_train_then_predict_then_dry_run(tmp_path, monkeypatch, capsys):
    main(["init", "--no-prompt", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    assert "Your model is at models/" in out
    assert "  nlu_0_WhitespaceTokenizer: trained in " in out  # progress, shown by the CLI
    assert main(["predict", "how often should I water my cactus?"]) == 0
    out = capsys.readouterr().out
    assert '"name": "ask_watering"' in out and "utter_watering" in out
    assert main(["train", "--dry-run"]) == 0
    assert "Dry run: code 0 (nothing to do)." in capsys.readouterr().out
    assert main(["train", "--dry-run", "--force"]) == 8


def test_train_nlu_and_core_subcommands(tmp_path, monkeypatch, capsys):
    main(["init", "--no-prompt", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    assert main(["train", "nlu", "--fixed-model-name", "n1"]) == 0
    assert (tmp_path / "models" / "n1.tar.gz").is_file()
    assert main(["train", "core", "--out", "core-models"]) == 0
    assert list((tmp_path / "core-models").glob("core-*.tar.gz"))


@pytest.mark.parametrize("argv", [["train", "nlu", "--force"], ["train", "--force", "nlu"],
                                  ["train", "core", "--force"]])
def test_force_should_retrain_a_part_the_cache_holds(tmp_path, monkeypatch, capsys, argv):
    main(["init", "--no-prompt", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    part = argv[2] if argv[1] == "--force" else argv[1]
    assert main(["train", part]) == 0
    assert main(["train", part]) == 0
    assert "training was forced" not in capsys.readouterr().out
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "trained in" in out and "training was forced" in out


def test_train_finetune_flag(tmp_path, monkeypatch, capsys):
    main(["init", "--no-prompt", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    assert main(["train"]) == 0
    assert main(["train", "--finetune", "--epoch-fraction", "0.5"]) == 0
    assert len(list((tmp_path / "models").glob("*.tar.gz"))) == 2
    assert main(["train", "--finetune", "missing-folder"]) == 1
    assert "the model to finetune missing-folder does not exist" in capsys.readouterr().err


def test_finetune_without_a_path_should_take_the_newest_model_in_out(tmp_path, monkeypatch,
                                                                     capsys):
    # As `rasa train nlu --finetune --out other`: the model comes from `other`, not `models/`.
    main(["init", "--no-prompt", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    assert main(["train", "nlu", "--out", "other"]) == 0
    capsys.readouterr()
    assert main(["train", "nlu", "--out", "other", "--finetune"]) == 0
    assert len(list((tmp_path / "other").glob("nlu-*.tar.gz"))) == 2
    assert not (tmp_path / "models").exists()


def test_predict_without_a_model_should_be_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "hello", "--model", "models"]) == 1
    assert capsys.readouterr().err.startswith("error: the model models does not exist")
    (tmp_path / "models").mkdir()
    assert main(["predict", "hello"]) == 1
    assert "error: there is no model (*.tar.gz) in models/" in capsys.readouterr().err


def test_the_program_ends_itself_but_a_caller_goes_on(capsys):
    """Called from Python (tests, benchmarks) ``main`` returns; as the command line itself
    it ends the process once done (see ``_ending``): output flushed, exit handlers run,
    the exit code kept, and the collector's last walks spared."""
    import gc
    import textwrap

    from parley.cli.main import main

    gc.unfreeze()
    try:
        assert main([]) == 2  # the process goes on
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
    capsys.readouterr()
    code = textwrap.dedent("""
        import atexit, gc, sys
        from parley.cli.main import main
        atexit.register(lambda: print("exit handler ran, frozen:", gc.get_freeze_count() > 0))
        sys.stdout.write("unflushed ")
        sys.argv = ["parley"]
        main()
        print("main returned")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2  # no command: the help and exit code 2
    assert done.stdout.startswith("unflushed usage: parley")
    assert done.stdout.rstrip().endswith("exit handler ran, frozen: True")
    assert "main returned" not in done.stdout


def test_a_program_with_threads_alive_should_exit_as_usual():
    """Another thread still running: ``main`` returns and Python's exit waits for it."""
    import textwrap

    code = textwrap.dedent("""
        import sys, threading, time
        from parley.cli.main import main
        threading.Thread(target=lambda: (time.sleep(0.2), print("thread done"))).start()
        sys.argv = ["parley"]
        print("main returned", main())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0
    assert done.stdout.rstrip().endswith("main returned 2\nthread done")


@pytest.mark.parametrize("setting", [None, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"])
def test_a_training_process_should_run_numpy_blas_on_one_thread_unless_told(setting):
    """Before numpy loads OpenBLAS, a training process asks it for one thread (faster, and
    the model independent of the core count); a thread count the user set is kept."""
    import os
    import textwrap

    code = textwrap.dedent("""
        import os, sys
        from parley.cli.train_cmd import _one_blas_thread
        assert "numpy" not in sys.modules
        _one_blas_thread()
        print(os.environ.get("OPENBLAS_NUM_THREADS"))
    """)
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")}
    if setting is not None:
        env[setting] = "3"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=env)
    expected = {None: "1", "OMP_NUM_THREADS": "None", "OPENBLAS_NUM_THREADS": "3"}[setting]
    assert done.stdout.strip() == expected


@pytest.mark.parametrize("argv, problem", [
    (["train", "--num-threads", "0"], "argument --num-threads: must be a whole number >= 1, not '0'"),
    (["train", "nlu", "--num-threads", "-2"],
     "argument --num-threads: must be a whole number >= 1, not '-2'"),
    (["test", "nlu", "--cross-validation", "--seed", "-5"],
     "argument --seed: must be a whole number >= 0, not '-5'"),
    (["test", "--seed", "x"], "argument --seed: must be a whole number >= 0, not 'x'"),
])
def test_a_number_out_of_range_should_be_a_usage_error(capsys, argv, problem):
    # --num-threads -2 trained as if unset, and --seed -5 crashed in numpy's default_rng
    # ("this is a bug in Parley"): both are the caller's to fix, said before any work.
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err


@pytest.mark.parametrize("argv, flag", [(["train", "nlu", "--nlu", "gone.yml"], "--nlu"),
                                        (["train", "core", "--stories", "gone.yml"], "--stories")])
def test_train_part_should_name_the_flag_of_a_missing_path(tmp_path, monkeypatch, capsys, argv,
                                                           flag):
    # It said "Pass existing files or folders (e.g. --data data)": a flag these lack.
    main(["init", "--no-prompt", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"error: the {flag} path 'gone.yml' does not exist" in err and "--data" not in err


@pytest.mark.parametrize("argv, problem", [
    (["train", "-c", "gone.yml", "nlu"], "gone.yml: error: the file cannot be read"),
    (["train", "-c", "gone.yml", "core"], "gone.yml: error: the file cannot be read"),
    (["data", "validate", "-c", "gone.yml", "stories"], "gone.yml: error: the file cannot be read"),
    (["test", "-m", "gone.tar.gz", "core"], "error: the model gone.tar.gz does not exist"),
    # given on both sides: the later one wins, as when an option is repeated
    (["train", "-c", "config.yml", "nlu", "-c", "gone.yml"], "gone.yml: error: the file"),
])
def test_an_option_before_the_part_should_count(tmp_path, monkeypatch, capsys, argv, problem):
    # `parley train -c other.yml nlu` trained with config.yml: the part's own default for -c
    # overwrote the one given before it, silently.
    main(["init", "--no-prompt", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    assert problem in capsys.readouterr().err


def test_a_port_before_run_actions_should_count(tmp_path, capsys):
    # It started the action server on rasa-sdk's default port, 5055, instead.
    assert main(["run", "-p", "0", "actions", "--python", str(tmp_path / "missing")]) == 1
    assert "--port must be between 1 and 65535, found 0." in capsys.readouterr().err


@pytest.mark.parametrize("argv, option, command, part", [
    (["train", "--dry-run", "nlu"], "--dry-run", "parley train", "parley train nlu"),
    (["train", "--augmentation", "5", "nlu"], "--augmentation", "parley train",
     "parley train nlu"),
    (["train", "--persist-nlu-data", "core"], "--persist-nlu-data", "parley train",
     "parley train core"),
    (["test", "--fail-on-prediction-errors", "nlu"], "--fail-on-prediction-errors",
     "parley test", "parley test nlu"),
    (["test", "--cross-validation", "core"], "--cross-validation", "parley test",
     "parley test core"),
    (["run", "--enable-api", "actions", "--python", "missing"], "--enable-api", "parley run",
     "parley run actions"),
])
def test_an_option_the_part_does_not_take_should_be_a_usage_error(tmp_path, monkeypatch, capsys,
                                                                 argv, option, command, part):
    # `parley train --dry-run nlu` trained for real, and `parley test
    # --fail-on-prediction-errors nlu` never failed: the option was dropped, silently.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert (f"{part}: error: {option} is an option of `{command}`, not of `{part}`"
            in capsys.readouterr().err)
