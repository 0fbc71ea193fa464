//! The topic-isolation experiment (`adapt isolate bench`): what keeping one KV cache per
//! topic buys, measured on conversations whose turns interleave topics and whose final
//! questions each ask for a fact one topic's turns state.
//!
//! Four conditions run on the same model and the same conversations:
//! 1. **shared** — one cache holds every turn in order (what a plain chat does);
//! 2. **none** — no history: each question with the system message alone;
//! 3. **oracle** — one cache per topic, by the set's labels;
//! 4. **routed** — one cache per topic, as routing by meaning ([`crate::chat::TopicChoice::Auto`])
//!    places the turns and the questions.
//!
//! The history's replies are the set's own (recorded, not generated), so every condition sees
//! the same text. Per condition: tokens prefilled (history and questions), the caches'
//! tokens and bytes once the history is in, time to first token of the questions, routing
//! accuracy against the labels, and answer quality — the log-likelihood of the expected
//! answer after the question and whether the greedy reply is exactly it.

use std::time::Instant;

use adapt_data::isolation::TopicConversation;
use mlx_rs::{Array, Dtype};
use serde::Serialize;

use crate::chat::{
    prompt_tokens_with, ChatOptions, ChatSession, Embedder, TopicChoice, TopicSettings,
};
use crate::error::{EngineError, Result};
use crate::generate::{prefill_to, GenerateParams, SequenceCache};
use crate::load::LoadedModel;

/// The four ways of holding a conversation's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Shared,
    None,
    Oracle,
    Routed,
}

impl Condition {
    pub const ALL: [Condition; 4] = [
        Condition::Shared,
        Condition::None,
        Condition::Oracle,
        Condition::Routed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Condition::Shared => "1 shared cache",
            Condition::None => "2 no cache",
            Condition::Oracle => "3 isolated by label",
            Condition::Routed => "4 isolated by routing",
        }
    }
}

/// How the experiment runs.
#[derive(Debug, Clone)]
pub struct IsolationOptions {
    pub settings: TopicSettings,
    /// Most tokens of each greedy answer.
    pub max_tokens: usize,
}

impl Default for IsolationOptions {
    fn default() -> Self {
        IsolationOptions {
            settings: TopicSettings::default(),
            max_tokens: 16,
        }
    }
}

/// One condition's figures over the whole set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConditionFigures {
    pub condition: Option<Condition>,
    pub conversations: usize,
    pub questions: usize,
    /// Tokens run through the model: history and questions (answer scoring not counted).
    pub prefilled_tokens: usize,
    /// Tokens the caches hold once the history is in, per conversation (mean).
    pub cache_tokens: f64,
    /// Bytes of those tokens' keys and values, per conversation (mean).
    pub cache_bytes: f64,
    /// Caches per conversation (mean).
    pub caches: f64,
    /// Time to first token of the questions: median, seconds.
    pub ttft_median: f64,
    /// Messages (turns and questions) routed to the topic their label says, under the
    /// mapping of each routed topic to the label most of its turns carry (routed only).
    pub routing_accuracy: Option<f64>,
    /// Log-likelihood of the expected answer after the question (mean per question, nats).
    pub answer_logprob: f64,
    /// The same per answer token.
    pub answer_logprob_per_token: f64,
    /// Greedy replies that are the expected answer (after lower-casing and trimming spaces,
    /// quotes and end punctuation).
    pub exact_match: f64,
    /// Greedy replies that contain the expected answer.
    pub contains_answer: f64,
    /// Seconds the condition took.
    pub seconds: f64,
}

/// Per question, what each condition gave (for the report's detail).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuestionResult {
    pub conversation: String,
    pub topic: String,
    pub condition: Condition,
    pub reply: String,
    pub answer_logprob: f64,
    pub exact: bool,
    /// The topic routing chose (routed only): the label it stands for.
    pub routed_to: Option<String>,
}

/// The experiment's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IsolationReport {
    pub conditions: Vec<ConditionFigures>,
    pub questions: Vec<QuestionResult>,
    /// The routing settings and the layer they resolved to.
    pub threshold: f32,
    pub layer: usize,
}

/// Runs the four conditions over `set`; `progress` hears (conversations done, total).
pub fn run(
    lm: &LoadedModel,
    set: &[TopicConversation],
    options: &IsolationOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<IsolationReport> {
    let mut figures: Vec<ConditionFigures> = Condition::ALL
        .iter()
        .map(|&c| ConditionFigures {
            condition: Some(c),
            ..ConditionFigures::default()
        })
        .collect();
    let mut ttfts: Vec<Vec<f64>> = vec![Vec::new(); 4];
    let mut routed_right = (0usize, 0usize);
    let mut questions = Vec::new();
    let embedder = Embedder::new(lm, &options.settings)?;
    for (n, conversation) in set.iter().enumerate() {
        for (i, &condition) in Condition::ALL.iter().enumerate() {
            let started = Instant::now();
            let run = run_one(lm, conversation, condition, options, &embedder)?;
            let f = &mut figures[i];
            f.conversations += 1;
            f.questions += run.answers.len();
            f.prefilled_tokens += run.prefilled;
            f.cache_tokens += run.cache_tokens as f64;
            f.cache_bytes += run.cache_bytes as f64;
            f.caches += run.caches as f64;
            for a in &run.answers {
                ttfts[i].push(a.ttft);
                f.answer_logprob += a.logprob;
                f.answer_logprob_per_token += a.logprob / a.answer_tokens.max(1) as f64;
                f.exact_match += f64::from(u8::from(a.exact));
                f.contains_answer += f64::from(u8::from(a.contains));
                questions.push(QuestionResult {
                    conversation: conversation.id.clone(),
                    topic: a.topic.clone(),
                    condition,
                    reply: a.reply.clone(),
                    answer_logprob: a.logprob,
                    exact: a.exact,
                    routed_to: a.routed_to.clone(),
                });
            }
            if let Some((right, total)) = run.routing {
                routed_right.0 += right;
                routed_right.1 += total;
            }
            f.seconds += started.elapsed().as_secs_f64();
        }
        progress(n + 1, set.len());
    }
    for (f, t) in figures.iter_mut().zip(&mut ttfts) {
        let (c, q) = (f.conversations.max(1) as f64, f.questions.max(1) as f64);
        f.cache_tokens /= c;
        f.cache_bytes /= c;
        f.caches /= c;
        f.answer_logprob /= q;
        f.answer_logprob_per_token /= q;
        f.exact_match /= q;
        f.contains_answer /= q;
        t.sort_by(f64::total_cmp);
        f.ttft_median = t.get(t.len() / 2).copied().unwrap_or(0.0);
        if f.condition == Some(Condition::Routed) {
            f.routing_accuracy = Some(routed_right.0 as f64 / routed_right.1.max(1) as f64);
        }
        if f.condition == Some(Condition::Oracle) {
            f.routing_accuracy = Some(1.0);
        }
    }
    Ok(IsolationReport {
        conditions: figures,
        questions,
        threshold: options.settings.threshold,
        layer: options.settings.layer_for(lm),
    })
}

struct Answer {
    topic: String,
    reply: String,
    ttft: f64,
    logprob: f64,
    answer_tokens: usize,
    exact: bool,
    contains: bool,
    routed_to: Option<String>,
}

struct OneRun {
    prefilled: usize,
    cache_tokens: usize,
    cache_bytes: usize,
    caches: usize,
    answers: Vec<Answer>,
    /// Routed messages placed right, of all (routed only).
    routing: Option<(usize, usize)>,
}

/// One conversation under one condition.
fn run_one(
    lm: &LoadedModel,
    c: &TopicConversation,
    condition: Condition,
    options: &IsolationOptions,
    embedder: &Embedder,
) -> Result<OneRun> {
    let mut session = ChatSession::new(lm, Some(&c.system), ChatOptions::default())?;
    let topical = matches!(condition, Condition::Oracle | Condition::Routed);
    if topical {
        session.enable_topics_with(lm, options.settings.clone(), embedder)?;
    }
    let chunk = GenerateParams::default().prefill_chunk;
    // The opening (system message) is in every condition's cache before anything else.
    let opening = crate::chat::render_history(lm, &session.messages, &session.options)?;
    let mut prefilled = prefill_to(&lm.model, &mut session.cache, &opening, chunk)?;
    let mut label_topic: Vec<(String, u32)> = Vec::new();
    // Per routed topic, the labels of the messages routing put there (turns and questions).
    let mut placed: Vec<(u32, String)> = Vec::new();
    for turn in &c.turns {
        match condition {
            Condition::None => {}
            Condition::Shared => {
                prefilled += session.record_turn(lm, &turn.user, &turn.assistant, None)?;
            }
            Condition::Oracle | Condition::Routed => {
                let choice = match condition {
                    Condition::Routed => TopicChoice::Auto,
                    _ => label_topic
                        .iter()
                        .find(|(l, _)| *l == turn.topic)
                        .map_or(TopicChoice::New, |(_, id)| TopicChoice::Topic(*id)),
                };
                let routed = session.route(lm, &turn.user, choice)?;
                let id = routed.routing.topic;
                if !label_topic.iter().any(|(l, _)| *l == turn.topic) {
                    label_topic.push((turn.topic.clone(), id));
                }
                placed.push((id, turn.topic.clone()));
                prefilled += session.record_turn(lm, &turn.user, &turn.assistant, Some(routed))?;
            }
        }
    }
    let (cache_tokens, cache_bytes, caches) = cache_size(&session);
    // Which label each routed topic stands for: the one most of its turns carry.
    let stands_for = |id: u32| -> Option<String> {
        let labels: Vec<&String> = placed
            .iter()
            .filter(|(t, _)| *t == id)
            .map(|(_, l)| l)
            .collect();
        let mut best: Option<(&String, usize)> = None;
        for l in &labels {
            let n = labels.iter().filter(|m| *m == l).count();
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((l, n));
            }
        }
        best.map(|(l, _)| l.clone())
    };
    let mut answers = Vec::new();
    let mut question_places = Vec::new();
    for q in &c.questions {
        let (answer, q_prefilled, place) = ask(
            lm,
            &session,
            q,
            condition,
            &label_topic,
            &stands_for,
            options,
        )?;
        prefilled += q_prefilled;
        question_places.extend(place);
        answers.push(answer);
    }
    let routing = (condition == Condition::Routed).then(|| {
        let turns_right = placed
            .iter()
            .filter(|(id, label)| stands_for(*id).as_ref() == Some(label))
            .count();
        let questions_right = question_places
            .iter()
            .filter(|(id, label, opened)| !opened && stands_for(*id).as_ref() == Some(label))
            .count();
        (
            turns_right + questions_right,
            placed.len() + question_places.len(),
        )
    });
    Ok(OneRun {
        prefilled,
        cache_tokens,
        cache_bytes,
        caches,
        answers,
        routing,
    })
}

/// Where a message went under routing: its topic, its label, whether it opened the topic.
type Place = (u32, String, bool);

/// Asks question `q` of a copy of `session` (the history stays as it was for the next one):
/// the greedy answer, the expected answer's likelihood; returns the answer, the tokens
/// prefilled and, with topics, where the question went (topic, label, whether it opened one).
fn ask(
    lm: &LoadedModel,
    session: &ChatSession,
    q: &adapt_data::isolation::Question,
    condition: Condition,
    label_topic: &[(String, u32)],
    stands_for: &dyn Fn(u32) -> Option<String>,
    options: &IsolationOptions,
) -> Result<(Answer, usize, Option<Place>)> {
    let params = GenerateParams {
        max_tokens: options.max_tokens,
        ..GenerateParams::default()
    };
    let mut quiet = |_: &str| true;
    let mut copy = session.clone();
    let mut place = None;
    let (generation, messages, base, routed_to) = match condition {
        Condition::Shared | Condition::None => {
            let g = copy.respond(lm, &q.user, &params, &mut quiet, None)?;
            (g, session.messages.clone(), session.cache.clone(), None)
        }
        Condition::Oracle | Condition::Routed => {
            let choice = match condition {
                Condition::Routed => TopicChoice::Auto,
                _ => label_topic
                    .iter()
                    .find(|(l, _)| *l == q.topic)
                    .map_or(TopicChoice::New, |(_, id)| TopicChoice::Topic(*id)),
            };
            let routed = copy.route(lm, &q.user, choice)?;
            let (id, opened) = (routed.routing.topic, routed.routing.opened);
            place = Some((id, q.topic.clone(), opened));
            let topic_cache = session
                .topics
                .as_ref()
                .and_then(|t| t.get(id))
                .map(|t| t.cache.clone());
            let (messages, base, to) = match topic_cache.filter(|_| !opened) {
                Some(cache) => (session.topic_messages(id), cache, stands_for(id)),
                None => {
                    let system = session.messages.iter().filter(|m| m.role == "system");
                    (system.cloned().collect(), session.cache.clone(), None)
                }
            };
            let g = copy.respond_routed(lm, &q.user, routed, &params, &mut quiet, None)?;
            (g, messages, base, to)
        }
    };
    let mut prompt_messages = messages;
    prompt_messages.push(adapt_text::ChatMessage::new("user", &q.user));
    let prompt = prompt_tokens_with(lm, &prompt_messages, &serde_json::Value::Null)?;
    let expected = lm.tokenizer.encode(&q.answer, false)?;
    let logprob = answer_logprob(lm, &base, &prompt, &expected)?;
    let (exact, contains) = judge(&generation.text, &q.answer);
    let prefilled = generation.stats.prefilled_tokens;
    let answer = Answer {
        topic: q.topic.clone(),
        reply: generation.text,
        ttft: generation.stats.time_to_first_token,
        logprob,
        answer_tokens: expected.len(),
        exact,
        contains,
        routed_to,
    };
    Ok((answer, prefilled, place))
}

/// Tokens, bytes (valid positions only) and number of the caches a conversation holds.
fn cache_size(session: &ChatSession) -> (usize, usize, usize) {
    let mut caches: Vec<&SequenceCache> = Vec::new();
    match &session.topics {
        Some(t) => caches.extend(t.topics.iter().map(|t| &t.cache)),
        None => caches.push(&session.cache),
    }
    let bytes = caches
        .iter()
        .flat_map(|c| &c.layers)
        .filter_map(|l| l.parts())
        .map(|(k, v)| k.iter().chain(&v).map(Array::nbytes).sum::<usize>())
        .sum();
    (
        caches.iter().map(|c| c.tokens.len()).sum(),
        bytes,
        caches.len(),
    )
}

/// The log-probability of `answer` following `prompt`, from `base` (a cache of some prefix
/// of `prompt`, left unchanged).
fn answer_logprob(
    lm: &LoadedModel,
    base: &SequenceCache,
    prompt: &[u32],
    answer: &[u32],
) -> Result<f64> {
    if answer.is_empty() || prompt.is_empty() {
        return Err(EngineError::InvalidRequest(
            "an empty answer has no likelihood".into(),
        ));
    }
    let mut cache = base.clone();
    prefill_to(&lm.model, &mut cache, &prompt[..prompt.len() - 1], 2048)?;
    let mut ids: Vec<i32> = vec![prompt[prompt.len() - 1] as i32];
    ids.extend(answer[..answer.len() - 1].iter().map(|&t| t as i32));
    let n = ids.len() as i32;
    let logits = lm
        .model
        .forward(&Array::from_slice(&ids, &[1, n]), &mut cache.layers)?
        .as_dtype(Dtype::Float32)?;
    logits.eval()?;
    let vocab = *logits.shape().last().unwrap_or(&0) as usize;
    let rows = logits.as_slice::<f32>();
    let mut total = 0.0f64;
    for (j, &token) in answer.iter().enumerate() {
        let row = &rows[j * vocab..(j + 1) * vocab];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max as f64
            + row
                .iter()
                .map(|&x| ((x - max) as f64).exp())
                .sum::<f64>()
                .ln();
        total += row
            .get(token as usize)
            .map_or(f64::NEG_INFINITY, |&x| x as f64 - lse);
    }
    Ok(total)
}

/// Whether `reply` is the expected answer, and whether it contains it.
fn judge(reply: &str, expected: &str) -> (bool, bool) {
    let clean = |s: &str| {
        s.trim()
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(|c: char| c == '"' || c == '\'' || c == '*' || c == '`')
            .trim_end_matches(['.', '!', '?', ','])
            .trim()
            .to_lowercase()
    };
    let (r, e) = (clean(reply), clean(expected));
    (r == e, reply.to_lowercase().contains(&e))
}

#[cfg(test)]
mod tests {
    use super::judge;

    #[test]
    fn a_reply_matches_after_case_spaces_quotes_and_end_punctuation() {
        assert_eq!(judge(" Pepper.", "Pepper"), (true, true));
        assert_eq!(judge("\"pepper\"\nmore", "Pepper"), (true, true));
        assert_eq!(judge("Her name is Pepper.", "Pepper"), (false, true));
        assert_eq!(judge("Wren", "Pepper"), (false, false));
        assert_eq!(judge("6:40", "6:40"), (true, true));
    }
}
