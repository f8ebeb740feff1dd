//! The flags of `resmooth train`, one per field of the flat configuration: the spelling, how the
//! value is written and whether the reference's train.py has the flag. clap's flags (`cli/`) take
//! their names from here and the command line a configuration stands for
//! (`report::reproduce`) is written from here, so they cannot drift apart; a test checks that
//! every field of the configuration is either here or in [`NOT_ON_THE_COMMAND_LINE`], with the
//! reason.

use Form::{PerChannel, PythonBool, Switch, Value};

/// How a flag writes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `--flag VALUE`: a number, a name or a path.
    Value,
    /// `--flag` alone when true; false is the default.
    Switch,
    /// The reference's argparse `type=bool`: `--flag True`, or `--flag ''` for false.
    PythonBool,
    /// `--flag R,G,B`: one number per channel.
    PerChannel,
}

/// A flag of `resmooth train` and the field of the configuration it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    /// The field's key in the flat JSON of a `TrainConfig` (`summary.json`, checkpoints).
    pub key: &'static str,
    /// The flag as typed: `--image-size`.
    pub spelling: &'static str,
    /// How the value is written.
    pub form: Form,
    /// Whether the reference's train.py has the flag.
    pub reference: bool,
    /// Written even at its default (the reference's README always gives `--dataset`, `--tag`
    /// and `--gpu`, whose default there is 1, not 0).
    pub always: bool,
}

impl Flag {
    /// The long name without its dashes, as clap takes it: `image-size`.
    pub fn long(&self) -> &'static str {
        self.spelling.trim_start_matches('-')
    }
}

/// A flag the reference has.
const fn reference(key: &'static str, spelling: &'static str, form: Form) -> Flag {
    Flag { key, spelling, form, reference: true, always: false }
}

/// A flag the reference has, written even at its default.
const fn always(key: &'static str, spelling: &'static str, form: Form) -> Flag {
    Flag { always: true, ..reference(key, spelling, form) }
}

/// A flag only resmooth has.
const fn ours(key: &'static str, spelling: &'static str, form: Form) -> Flag {
    Flag { key, spelling, form, reference: false, always: false }
}

/// Declares a constant for each flag and [`FLAGS`], all of them in the order given.
macro_rules! flags {
    ($($name:ident: $who:ident $key:literal $spelling:literal $form:ident;)+) => {
        $(
            #[doc = concat!("`", $spelling, "`, the field `", $key, "`.")]
            pub const $name: Flag = $who($key, $spelling, $form);
        )+

        /// Every flag of a configuration's command line, in the order it is written: the
        /// reference's first (in the order earlier reports wrote them), then resmooth's additions.
        pub const FLAGS: &[Flag] = &[$($name),+];
    };
}

flags! {
    DATAROOT: reference "dataroot" "--dataroot" Value;
    DATASET: always "dataset" "--dataset" Value;
    TAG: always "tag" "--tag" Value;
    GPU: always "gpu" "--gpu" Value;
    SAVE: reference "save" "--save" Value;
    AUG: reference "aug" "--aug" Value;
    N: reference "n" "--N" Value;
    M: reference "m" "--M" Value;
    CUTOUT: reference "cutout" "--cutout" Value;
    PROB: reference "prob" "--prob" Value;
    MODEL: reference "model" "--model" Value;
    EPOCHS: reference "epochs" "--epochs" Value;
    LR: reference "lr" "--lr" Value;
    COSINE: reference "cosine" "--cosine" PythonBool;
    WARM: reference "warm" "--warm" PythonBool;
    WARM_MULTIPLIER: reference "warm_multiplier" "--warm-multiplier" Value;
    WARM_EPOCH: reference "warm_epoch" "--warm-epoch" Value;
    BATCH_SIZE: reference "batch_size" "--batch-size" Value;
    WEIGHT_DECAY: reference "weight_decay" "--weight-decay" Value;
    NESTEROV: reference "nesterov" "--nesterov" PythonBool;
    ONLY_EVAL: reference "only_eval" "--only-eval" Switch;
    EVAL_DA: reference "eval_da" "--evalDA" Switch;
    FAIR_COMPARISON: reference "fair_comparison" "--fair-comparison" Value;
    GMM: reference "gmm" "--gmm" Switch;
    WEIGHTING: reference "weighting" "--weighting" Value;
    LOSS: reference "loss" "--loss" Value;
    SMOOTH_ORG: reference "smooth_org" "--smooth-org" Value;
    SMOOTH_AUG: reference "smooth_aug" "--smooth-aug" Value;
    K: reference "k" "--K" Value;
    LAMDA: reference "lamda" "--lamda" Value;
    T: reference "t" "--T" Value;
    PRETRAINED: reference "pretrained" "--pretrained" Value;
    LOGDIR: ours "logdir" "--logdir" Value;
    SEED: ours "seed" "--seed" Value;
    TRAIN_SIZE: ours "train_size" "--train-size" Value;
    TEST_SIZE: ours "test_size" "--test-size" Value;
    IMAGE_SIZE: ours "image_size" "--image-size" Value;
    MEAN: ours "mean" "--mean" PerChannel;
    STD: ours "std" "--std" PerChannel;
    CROP_PADDING: ours "crop_padding" "--crop-padding" Value;
    PRECISION: ours "precision" "--precision" Value;
    MEMORY_FORMAT: ours "memory_format" "--memory-format" Value;
    NORMALISED_SAMPLE_SMOOTH: ours "normalised_sample_smooth" "--normalised-sample-smooth" Switch;
    DAOOD: ours "daood" "--daood" Value;
    DAID: ours "daid" "--daid" Value;
    DETERMINISTIC: ours "deterministic" "--deterministic" Switch;
    CUDA_GRAPHS: ours "cuda_graphs" "--cuda-graphs" Value;
    SAVE_FORMAT: ours "save_format" "--save-format" Value;
    SYNC_BN: ours "sync_bn" "--sync-bn" Switch;
    DIST_TIMEOUT: ours "dist_timeout" "--dist-timeout" Value;
    REDUCED_DCT: ours "reduced_dct" "--reduced-dct" Switch;
    ON_BAD_IMAGE: ours "on_bad_image" "--on-bad-image" Value;
    DATA_IN_MEMORY: ours "data_in_memory" "--data-in-memory" Value;
}

/// The fields of the configuration that a command line standing for a run leaves out, each
/// with the reason: they say how one session runs on one machine, not what the run is.
pub const NOT_ON_THE_COMMAND_LINE: [(&str, &str); 4] = [
    ("mirror", "where missing dataset files are downloaded from (also $RESMOOTH_MIRROR), not what is trained on"),
    ("workers", "the machine's data threads; the batches are the same for every count"),
    ("restart", "a session's choice to discard the checkpoint: the line should resume the run, not start it over"),
    ("stop_after", "where one session ended; the line runs the run on to its --epochs"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use std::collections::BTreeSet;

    #[test]
    fn every_field_is_a_flag_or_named_as_not_on_the_command_line() {
        let json = serde_json::to_value(TrainConfig::default()).unwrap();
        let fields: BTreeSet<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let flags: BTreeSet<&str> = FLAGS.iter().map(|f| f.key).collect();
        let left_out: BTreeSet<&str> = NOT_ON_THE_COMMAND_LINE.iter().map(|(key, _)| *key).collect();
        assert_eq!(flags.len(), FLAGS.len(), "a field has two flags");
        assert!(flags.is_disjoint(&left_out), "{:?}", flags.intersection(&left_out).collect::<Vec<_>>());
        let decided: BTreeSet<&str> = flags.union(&left_out).copied().collect();
        let undecided: Vec<&&str> = fields.difference(&decided).collect();
        assert!(
            undecided.is_empty(),
            "fields neither in config::flags::FLAGS nor in NOT_ON_THE_COMMAND_LINE: {undecided:?}; \
             give each a flag (and clap's `long = flags::X.long()`) or say why a command line leaves it out"
        );
        let unknown: Vec<&&str> = decided.difference(&fields).collect();
        assert!(unknown.is_empty(), "keys that are no field of the configuration: {unknown:?}");
    }

    #[test]
    fn spellings_are_distinct_and_every_value_can_be_written() {
        let spellings: BTreeSet<&str> = FLAGS.iter().map(|f| f.spelling).collect();
        assert_eq!(spellings.len(), FLAGS.len());
        let json = serde_json::to_value(TrainConfig::default()).unwrap();
        for f in FLAGS {
            assert!(f.spelling.starts_with("--") && !f.long().starts_with('-'), "{}", f.spelling);
            let default = &json[f.key];
            let fits = match f.form {
                // a switch can only say true
                Switch => *default == false,
                PythonBool => default.is_boolean(),
                PerChannel => default.is_null() || default.is_array(),
                Value => !default.is_boolean() && !default.is_array(),
            };
            assert!(fits, "{} cannot write {default} as {:?}", f.spelling, f.form);
        }
        assert_eq!((IMAGE_SIZE.long(), EVAL_DA.long(), N.long()), ("image-size", "evalDA", "N"));
    }
}
