//! Probe prompts: answered greedily with the adapter as it is at each evaluation, so a person
//! sees what the model has learned so far.

use adapt_text::{ChatMessage, ChatTemplate, Tokenizer};

use super::config::TrainConfig;
use super::events::ProbeAnswer;
use crate::error::Result;
use crate::generate::{generate, GenerateParams, SequenceCache};
use crate::models::Model;
use crate::sample::SamplingParams;

/// Answers a probe prompt with the model as it is now.
pub type Prober<'a> = dyn Fn(&Model, &str, usize) -> Result<String> + 'a;

/// A [`Prober`] that renders the prompt as a user turn with `template` (if any) and answers
/// greedily.
pub fn greedy_prober<'a>(
    tokenizer: &'a Tokenizer,
    template: Option<&'a ChatTemplate>,
) -> impl Fn(&Model, &str, usize) -> Result<String> + 'a {
    move |model, prompt, max_tokens| {
        let messages = [ChatMessage::new("user", prompt)];
        let tokens = match template {
            Some(t) => tokenizer.encode(&t.render(&messages, true)?, false)?,
            None => tokenizer.encode(prompt, true)?,
        };
        let mut cache = SequenceCache::new(model);
        let params = GenerateParams {
            max_tokens,
            sampling: SamplingParams::default(),
            ..GenerateParams::default()
        };
        let out = generate(
            model,
            tokenizer,
            &mut cache,
            &tokens,
            &params,
            &mut |_: &str| true,
        )?;
        Ok(out.text.trim().to_string())
    }
}

/// Answers to the probe prompts with the current adapter.
pub(crate) fn probe(
    model: &Model,
    prober: Option<&Prober<'_>>,
    config: &TrainConfig,
) -> Result<Vec<ProbeAnswer>> {
    let Some(prober) = prober else {
        return Ok(Vec::new());
    };
    config
        .probes
        .iter()
        .map(|prompt| {
            Ok(ProbeAnswer {
                prompt: prompt.clone(),
                answer: prober(model, prompt, config.probe_max_tokens)?,
            })
        })
        .collect()
}
