// The presets as the API's `training_presets` returns them: the mock backend's answer and the
// unit tests' fixture (a test double of adapt-api's train_form.rs, not a second source).

import type { TrainConfig, TrainForm, TrainPreset } from "../lib/types";

const config: TrainConfig = {
  fine_tune_type: "lora",
  num_layers: 16,
  lora_parameters: { rank: 8, scale: 20, dropout: 0, keys: null },
  optimizer: "adam",
  optimizer_config: null,
  learning_rate: 1e-4,
  lr_schedule: null,
  schedule: null,
  batch_size: 4,
  iters: null,
  epochs: null,
  max_seq_length: 2048,
  steps_per_report: 10,
  steps_per_eval: 200,
  val_batches: 25,
  save_every: 100,
  grad_accumulation_steps: 1,
  grad_checkpoint: false,
  seed: 0,
  max_grad_norm: null,
  early_stopping_patience: null,
  keep_best: true,
  probes: [],
  probe_max_tokens: 48,
  memory_budget: null,
  prefetch: true,
  precision: "auto",
};

const form = (over: Partial<TrainConfig>, lora: Partial<TrainConfig["lora_parameters"]> = {}): TrainForm => ({
  model: "",
  dataset: "",
  csv: { delimiter: null, prompt_template: null, completion_template: null, completion_column: null },
  valid_share: 0.1,
  mask_prompt: true,
  qlora: false,
  config: { ...config, ...over, lora_parameters: { ...config.lora_parameters, ...lora } },
  name: null,
});

export const PRESETS: TrainPreset[] = [
  {
    name: "quick",
    label: "Quick",
    hint: "a first look in minutes: few layers, one epoch",
    form: form({ num_layers: 8, epochs: 1, max_seq_length: 512, save_every: 50, steps_per_eval: 25 }),
  },
  {
    name: "standard",
    label: "Standard",
    hint: "a good default: 16 layers, three epochs, cosine decay",
    form: form(
      { epochs: 3, max_seq_length: 1024, steps_per_eval: 50, early_stopping_patience: 3, schedule: { kind: "cosine", warmup: 10, min_ratio: 0.1 } },
      { rank: 16, dropout: 0.05 },
    ),
  },
  {
    name: "thorough",
    label: "Thorough",
    hint: "every layer, rank 32, five epochs, checkpointed activations",
    form: form(
      {
        num_layers: -1, learning_rate: 5e-5, epochs: 5, grad_checkpoint: true, steps_per_eval: 100,
        early_stopping_patience: 5, schedule: { kind: "cosine", warmup: 20, min_ratio: 0.1 },
      },
      { rank: 32, dropout: 0.05 },
    ),
  },
];
