//! `summary.json`, the run's labelled figures ([`RunSummary`]), and how its
//! model is selected, in words ([`RunSummary::describe_selection`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::metrics::{float_or_nan, Selection};
use super::run::Saved;
use super::tau_stats::{GroupTau, TauStats};
use crate::config::Config;
use crate::provenance::Provenance;

/// `summary.json`: the honest figures, labelled. The model is selected on the
/// validation set (accuracy for classification, ties broken by lower loss; loss
/// for regression), or, without a validation set, is the last evaluation's
/// (`selected_on = "last"`: the `*_at_best_validation` figures are then the
/// last ones); test figures of the best-on-test evaluation are reported only
/// because papers do, and are labelled as such.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunSummary {
    pub name: String,
    pub run_dir: String,
    pub model: String,
    pub seed: u64,
    pub steps: u64,
    #[serde(deserialize_with = "float_or_nan")]
    pub elapsed_s: f64,
    /// Samples of the validation set (0: none, every training sample trained on).
    #[serde(default)]
    pub validation_samples: usize,
    /// `validation_accuracy` or `validation_loss`; `last` without a validation set.
    pub selected_on: String,
    /// How the selected model was chosen and which figures are its, in words.
    #[serde(default)]
    pub selection: String,
    /// The selected model's file in the run directory (`checkpoints/best.safetensors`,
    /// or `checkpoints/last.safetensors` when `selected_on` is `last`).
    #[serde(default)]
    pub selected_checkpoint: String,
    /// The selected, best-on-test and last figures.
    #[serde(flatten)]
    pub figures: Selection,
    /// `test_accuracy` or `test_loss`: the `best_test_*` figures are selected
    /// on the test set (optimistic; the published protocol).
    #[serde(default)]
    pub best_test_selected_on: String,
    /// `checkpoints/best_on_test.safetensors` with `output.save_best_on_test`, else `null`.
    #[serde(default)]
    pub best_on_test_checkpoint: Option<String>,
    /// Epochs trained (dataset tasks).
    #[serde(default)]
    pub epochs: Option<f64>,
    /// Classification: the first iteration at which the training accuracy,
    /// averaged over the last [`CONVERGENCE_WINDOW`](super::trainer::CONVERGENCE_WINDOW) iterations, reached
    /// [`CONVERGENCE_ACCURACY`](super::trainer::CONVERGENCE_ACCURACY) (the paper's "iterations to reach 95 %");
    /// `null` if it never did.
    #[serde(default)]
    pub iterations_to_95: Option<u64>,
    /// Learned time constants per decay tensor of the model selected on
    /// validation and of the last model.
    pub tau_at_best_validation: BTreeMap<String, TauStats>,
    pub tau_last: BTreeMap<String, TauStats>,
    /// Time constants of the first hidden layer's input synapses per input-channel
    /// group of the task (e.g. DMS `left_cue`, `right_cue`, `noise`; HetSynLIF only).
    #[serde(default)]
    pub input_tau_at_best_validation: BTreeMap<String, GroupTau>,
    #[serde(default)]
    pub input_tau_last: BTreeMap<String, GroupTau>,
    /// Provenance of the process that finished the run: hetsyn's version, the
    /// git commit it was built from ("unknown" outside a checkout), its command
    /// line and host.
    #[serde(flatten)]
    pub provenance: Provenance,
}

impl RunSummary {
    /// The summary of a run of `config` in `run_dir` before its first evaluation.
    pub fn new(config: &Config, run_dir: &Path) -> RunSummary {
        RunSummary {
            name: config.name.clone(),
            run_dir: run_dir.display().to_string(),
            model: format!("{:?}", config.model.kind).to_lowercase(),
            seed: config.seed,
            ..RunSummary::default()
        }
    }
}

impl RunSummary {
    /// The end-of-training line: the selected model's test figures, the last
    /// ones and the best on test, each labelled with what it was selected on.
    pub fn line(&self) -> String {
        let f = &self.figures;
        let percent = |a: Option<f64>| a.map(|a| format!("{:.2}%", 100.0 * a)).unwrap_or_else(|| "-".into());
        let at = |step: u64, epoch: Option<f64>| match epoch {
            Some(e) => format!("epoch {e}, step {step}"),
            None => format!("step {step}"),
        };
        let selected_at = at(f.best_validation_step, f.best_validation_epoch);
        let selected = match (self.selected_on.as_str(), f.best_validation_epoch) {
            ("last", Some(_)) => format!("no validation set: selected the last epoch ({selected_at}):"),
            ("last", None) => format!("no validation set: selected the last evaluation ({selected_at}):"),
            _ => format!("at best validation ({selected_at})"),
        };
        let best_test = match f.best_test_accuracy {
            Some(a) => percent(Some(a)),
            None => format!("loss {:.6}", f.best_test_loss),
        };
        // regression runs have no accuracy: their figure is the test loss
        let figures = |accuracy: Option<f64>, loss: f64| match accuracy {
            Some(_) => format!("test accuracy {}, test loss {loss:.6}", percent(accuracy)),
            None => format!("test loss {loss:.6}"),
        };
        format!(
            "{selected} {}; last {}; best on test (selected on the test set) {best_test} at {}; {:.1} s",
            figures(f.test_accuracy_at_best_validation, f.test_loss_at_best_validation),
            figures(f.last_test_accuracy, f.last_test_loss),
            at(f.best_test_step, f.best_test_epoch),
            self.elapsed_s
        )
    }

    /// Fills in the fields that say how the run's model is selected, and the
    /// prose of `selection` (a function of the task and config, so also set on
    /// `--resume`): on `validation_samples` held-out samples (0: none, the last
    /// evaluation), by accuracy (`classification`) or loss.
    pub fn describe_selection(&mut self, validation_samples: usize, classification: bool, best_on_test: bool) {
        let test_figure = if classification { "test_accuracy" } else { "test_loss" };
        let best_test = format!(
            "best_test_* are selected on the test set ({test_figure}; optimistic, reported because papers do){}",
            if best_on_test { format!(", saved as {}", Saved::BestOnTest.relative_path()) } else { String::new() }
        );
        self.validation_samples = validation_samples;
        if validation_samples > 0 {
            let figure = if classification { "validation_accuracy" } else { "validation_loss" };
            self.selected_on = figure.into();
            self.selected_checkpoint = Saved::Best.relative_path();
            self.selection = format!(
                "selected on the validation set ({figure}, {validation_samples} held-out samples): the *_at_best_validation figures are those of {}; {best_test}",
                Saved::Best.relative_path()
            );
        } else {
            self.selected_on = "last".into();
            self.selected_checkpoint = Saved::Last.relative_path();
            self.selection = format!(
                "no validation set (every training sample trained on): the selected model is the last evaluation's ({}), so the *_at_best_validation figures and best_validation_step/epoch are the last epoch's and best_validation_accuracy/loss are null; {best_test}",
                Saved::Last.relative_path()
            );
        }
        self.best_test_selected_on = test_figure.into();
        self.best_on_test_checkpoint = best_on_test.then(|| Saved::BestOnTest.relative_path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> RunSummary {
        let text = "[model]\nkind = \"hetsynlif\"\ntau_init = { dist = \"constant\", value = 0.02 }\nlayers = [{ size = 2 }]\n[model.readout]\nloss = \"last\"\n[task]\nkind = \"dms\"\n";
        RunSummary::new(&Config::from_toml(text, &[]).unwrap(), Path::new("results/run"))
    }

    #[test]
    fn the_selection_is_described_with_and_without_a_validation_set() {
        let mut s = summary();
        s.describe_selection(256, true, false);
        assert_eq!(
            (s.selected_on.as_str(), s.selected_checkpoint.as_str()),
            ("validation_accuracy", "checkpoints/best.safetensors")
        );
        assert!(s.selection.contains("256 held-out samples"), "{}", s.selection);
        assert_eq!((s.best_test_selected_on.as_str(), s.best_on_test_checkpoint.as_deref()), ("test_accuracy", None));
        s.describe_selection(0, false, true);
        assert_eq!((s.selected_on.as_str(), s.selected_checkpoint.as_str()), ("last", "checkpoints/last.safetensors"));
        assert_eq!(s.validation_samples, 0);
        assert_eq!(s.best_test_selected_on, "test_loss");
        assert_eq!(s.best_on_test_checkpoint.as_deref(), Some("checkpoints/best_on_test.safetensors"));
    }

    /// The provenance keys sit at the top level of summary.json, last, and read back.
    #[test]
    fn provenance_is_flattened_into_the_summary() {
        let mut s = summary();
        s.provenance = Provenance::current();
        let text = serde_json::to_string(&s).unwrap();
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
        let order = ["input_tau_last", "hetsyn_version", "git_commit", "command_line", "host"].map(at);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        let back: RunSummary = serde_json::from_str(&text).unwrap();
        assert_eq!(back.provenance, s.provenance);
    }
}
