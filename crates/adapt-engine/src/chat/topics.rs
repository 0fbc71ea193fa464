//! Topics: one conversation, several threads, each with its own KV cache.
//!
//! With topics on, every message after the system message belongs to a topic, and each topic
//! keeps the cache of the conversation it alone makes: the system message (the opening every
//! topic shares) and that topic's turns, in order. A turn is answered in its topic's cache —
//! the model never sees the other topics — so a topic's replies are the ones a conversation
//! holding only its turns would get.
//!
//! A new message goes where the person picks, or where it fits by meaning: its embedding
//! ([`crate::Model::embedding`], the loaded model's own hidden states, less a background
//! direction measured on neutral sentences, at unit length) against each topic's centroid (the
//! mean of its messages' embeddings); the most similar topic at or above the threshold takes
//! it, otherwise it opens a new one. Routing happens before the message is prefilled — which
//! cache takes it depends on it — so the embedding comes from a pass of the message alone.
//! Moving a message (with its reply) to another topic trims it from one cache and prefills it
//! in the other, so both hold what a recomputation would.

use serde::{Deserialize, Serialize};

use super::{render_history, ChatSession, PrefixTrie};
use crate::error::{EngineError, Result};
use crate::generate::{prefill_to, GenerateParams, Generation, SequenceCache, TokenSink};
use crate::load::LoadedModel;
use adapt_text::ChatMessage;

/// The similarity a message needs to join a topic when none is given.
pub const DEFAULT_THRESHOLD: f32 = 0.25;

/// How a conversation routes messages to topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct TopicSettings {
    /// The block whose hidden states make a message's embedding (1-based; `None`: the last).
    pub layer: Option<usize>,
    /// The least similarity to a topic's centroid (cosine, -1 to 1) for a message to join it;
    /// below it for every topic, the message opens a new one.
    pub threshold: f32,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            layer: None,
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

impl TopicSettings {
    /// The embedding layer for `lm` (1-based).
    pub fn layer_for(&self, lm: &LoadedModel) -> usize {
        self.layer
            .unwrap_or(usize::MAX)
            .clamp(1, lm.model.n_layers())
    }

    fn check(&self) -> Result<()> {
        if !(-1.0..=1.0).contains(&self.threshold) {
            return Err(EngineError::InvalidRequest(format!(
                "the topic threshold is a cosine similarity between -1 and 1, not {}",
                self.threshold
            )));
        }
        if self.layer == Some(0) {
            return Err(EngineError::InvalidRequest(
                "the embedding layer counts from 1 (the first block)".into(),
            ));
        }
        Ok(())
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum TopicChoice {
    /// Where it fits by meaning (or a new topic).
    Auto,
    /// This topic.
    Topic(u32),
    /// A new topic.
    New,
}

/// A topic's similarity to a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TopicSimilarity {
    pub topic: u32,
    pub name: String,
    pub similarity: f32,
}

/// Where a message went, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Routing {
    pub topic: u32,
    pub name: String,
    /// The message opened this topic.
    pub opened: bool,
    /// The person picked the topic (no routing by meaning).
    pub picked: bool,
    /// Every topic's similarity to the message, most similar first.
    pub similarities: Vec<TopicSimilarity>,
    pub threshold: f32,
}

/// A message routed and embedded, ready to be answered in its topic
/// ([`ChatSession::respond_routed`]).
#[derive(Debug, Clone)]
pub struct Routed {
    pub routing: Routing,
    embedding: Vec<f32>,
}

/// One topic thread.
#[derive(Debug, Clone)]
pub struct Topic {
    pub id: u32,
    pub name: String,
    /// The cache of the system message and this topic's turns.
    pub cache: SequenceCache,
    /// This topic's messages the model no longer sees (its context is full).
    pub left_out: usize,
}

/// The topics of a conversation.
#[derive(Debug, Clone)]
pub struct Topics {
    pub settings: TopicSettings,
    pub topics: Vec<Topic>,
    /// The topic of each message of the conversation (`None`: a system message).
    pub of: Vec<Option<u32>>,
    /// Each user message's embedding (centred, unit length); `None` for other messages.
    embeddings: Vec<Option<Vec<f32>>>,
    /// The background direction taken off every embedding.
    center: Vec<f32>,
    next_id: u32,
}

/// Neutral sentences on unrelated subjects: their mean embedding is the direction every text
/// shares under a model, which would otherwise make all texts look alike.
const BACKGROUND: [&str; 16] = [
    "The weather today is mild with a light wind.",
    "Please send me the report by Friday.",
    "She painted the fence a bright shade of green.",
    "How many players are on a football team?",
    "The museum opens at nine in the morning.",
    "I think the battery in my phone is dying.",
    "Our neighbours adopted a small grey kitten.",
    "What is the capital city of Australia?",
    "He practised the piano for an hour every evening.",
    "The recipe needs two eggs and a cup of milk.",
    "Can you recommend a good book about history?",
    "The train was delayed because of snow on the tracks.",
    "Water boils at a lower temperature at high altitude.",
    "I would like to learn how to swim this summer.",
    "The company announced a new product line.",
    "Remember to water the tomatoes twice a week.",
];

/// A router: the embedding a model gives a text, for placing messages among topics.
#[derive(Debug, Clone)]
pub struct Embedder {
    layer: usize,
    center: Vec<f32>,
}

impl Embedder {
    /// The embedder of `lm` at `settings`' layer (measures the background direction).
    pub fn new(lm: &LoadedModel, settings: &TopicSettings) -> Result<Embedder> {
        let layer = settings.layer_for(lm);
        let mut center: Vec<f32> = Vec::new();
        for text in BACKGROUND {
            let e = raw_embedding(lm, text, layer)?;
            if center.is_empty() {
                center = vec![0.0; e.len()];
            }
            center.iter_mut().zip(&e).for_each(|(c, x)| *c += x);
        }
        let n = BACKGROUND.len() as f32;
        center.iter_mut().for_each(|c| *c /= n);
        Ok(Embedder { layer, center })
    }

    /// `text`'s embedding: centred, unit length.
    pub fn embed(&self, lm: &LoadedModel, text: &str) -> Result<Vec<f32>> {
        let mut e = raw_embedding(lm, text, self.layer)?;
        e.iter_mut().zip(&self.center).for_each(|(x, c)| *x -= c);
        Ok(unit(e))
    }
}

fn raw_embedding(lm: &LoadedModel, text: &str, layer: usize) -> Result<Vec<f32>> {
    let text = if text.trim().is_empty() { "." } else { text };
    let tokens = lm.tokenizer.encode(text, false)?;
    lm.model.embedding(&tokens, layer)
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let length = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if length > 1e-12 {
        v.iter_mut().for_each(|x| *x /= length);
    }
    v
}

/// Cosine similarity of `a` and the unit vector `b`.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let length = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    if length > 1e-12 {
        dot / length
    } else {
        0.0
    }
}

/// Longer words that say nothing about a topic.
const PLAIN_WORDS: [&str; 24] = [
    "what", "when", "where", "which", "while", "should", "would", "could", "does", "have", "with",
    "that", "this", "there", "their", "they", "from", "your", "about", "into", "just", "some",
    "also", "been",
];

/// A topic's name from its first message: its first few longer words that say something.
fn name_from(text: &str) -> String {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
        .filter(|w| w.chars().count() > 3)
        .filter(|w| !PLAIN_WORDS.contains(&w.to_lowercase().as_str()))
        .take(3)
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() {
        "topic".into()
    } else {
        words.join(" ")
    }
}

impl Topics {
    /// The topic `id`.
    pub fn get(&self, id: u32) -> Option<&Topic> {
        self.topics.iter().find(|t| t.id == id)
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut Topic> {
        self.topics.iter_mut().find(|t| t.id == id)
    }

    /// Turns (replies) of topic `id`.
    pub fn turns(&self, id: u32, messages: &[ChatMessage]) -> usize {
        self.of
            .iter()
            .zip(messages)
            .filter(|(t, m)| **t == Some(id) && m.role == "assistant")
            .count()
    }

    /// Each topic's similarity to the embedding `e`, most similar first.
    fn similarities(&self, e: &[f32]) -> Vec<TopicSimilarity> {
        let mut out: Vec<TopicSimilarity> = self
            .topics
            .iter()
            .filter_map(|t| {
                let mut sum = vec![0.0f32; e.len()];
                let mut any = false;
                for (of, emb) in self.of.iter().zip(&self.embeddings) {
                    if let (Some(id), Some(emb)) = (of, emb) {
                        if *id == t.id {
                            sum.iter_mut().zip(emb).for_each(|(s, x)| *s += x);
                            any = true;
                        }
                    }
                }
                any.then(|| TopicSimilarity {
                    topic: t.id,
                    name: t.name.clone(),
                    similarity: cosine(&sum, e),
                })
            })
            .collect();
        out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        out
    }

    /// Drops topics without messages (but `keep`).
    fn prune(&mut self, keep: Option<u32>) {
        let of = &self.of;
        self.topics
            .retain(|t| Some(t.id) == keep || of.contains(&Some(t.id)));
    }
}

impl ChatSession {
    /// Turns topics on (with `settings`; again: new settings). The turns so far become the
    /// first topic, keeping the conversation's cache.
    pub fn enable_topics(&mut self, lm: &LoadedModel, settings: TopicSettings) -> Result<()> {
        settings.check()?;
        let layer_changed = self
            .topics
            .as_ref()
            .is_some_and(|t| t.settings.layer_for(lm) != settings.layer_for(lm));
        if let Some(topics) = self.topics.as_mut().filter(|_| !layer_changed) {
            topics.settings = settings;
            return Ok(());
        }
        let embedder = Embedder::new(lm, &settings)?;
        self.enable_topics_with(lm, settings, &embedder)
    }

    /// [`ChatSession::enable_topics`] with an embedder already made for `settings`' layer
    /// (many conversations with one model need to measure its background only once).
    pub fn enable_topics_with(
        &mut self,
        lm: &LoadedModel,
        settings: TopicSettings,
        embedder: &Embedder,
    ) -> Result<()> {
        settings.check()?;
        if embedder.layer != settings.layer_for(lm) {
            return Err(EngineError::InvalidRequest(format!(
                "the embedder reads layer {}, the settings ask for layer {}",
                embedder.layer,
                settings.layer_for(lm)
            )));
        }
        if let Some(topics) = self.topics.as_mut() {
            // Another layer: every message is embedded again.
            topics.embeddings = embed_messages(lm, embedder, &self.messages)?;
            topics.center = embedder.center.clone();
            topics.settings = settings;
            return Ok(());
        }
        let embeddings = embed_messages(lm, embedder, &self.messages)?;
        let first_user = self.messages.iter().find(|m| m.role == "user");
        let mut topics = Topics {
            settings,
            topics: Vec::new(),
            of: self
                .messages
                .iter()
                .map(|m| (m.role != "system").then_some(1))
                .collect(),
            embeddings,
            center: embedder.center.clone(),
            next_id: 1,
        };
        if let Some(first) = first_user {
            topics.topics.push(Topic {
                id: 1,
                name: name_from(&first.content),
                cache: take_cache(&mut self.cache),
                left_out: self.left_out,
            });
            topics.next_id = 2;
        }
        self.left_out = 0;
        self.topics = Some(topics);
        Ok(())
    }

    /// Turns topics off: the conversation goes on as one thread, all its messages in order,
    /// from the cache of the topic that opened it (valid as far as the renderings agree).
    pub fn disable_topics(&mut self) {
        let Some(mut topics) = self.topics.take() else {
            return;
        };
        let first = topics.of.iter().flatten().next().copied();
        if let Some(topic) = first.and_then(|id| topics.get_mut(id)) {
            self.cache = take_cache(&mut topic.cache);
        }
        self.left_out = 0;
    }

    /// The messages the model sees in topic `id`: the system message and the topic's own.
    pub fn topic_messages(&self, id: u32) -> Vec<ChatMessage> {
        let Some(topics) = &self.topics else {
            return self.messages.clone();
        };
        self.messages
            .iter()
            .zip(&topics.of)
            .filter(|(m, t)| m.role == "system" || **t == Some(id))
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Where `text` goes under `choice`, with the similarities behind the decision.
    pub fn route(&self, lm: &LoadedModel, text: &str, choice: TopicChoice) -> Result<Routed> {
        let topics = self.topics.as_ref().ok_or_else(topics_off)?;
        let embedding = self.embedder(lm)?.embed(lm, text)?;
        let similarities = topics.similarities(&embedding);
        let threshold = topics.settings.threshold;
        let new = |picked: bool| Routing {
            topic: topics.next_id,
            name: name_from(text),
            opened: true,
            picked,
            similarities: similarities.clone(),
            threshold,
        };
        let existing = |id: u32, picked: bool| -> Result<Routing> {
            let topic = topics.get(id).ok_or_else(|| no_topic(id))?;
            Ok(Routing {
                topic: id,
                name: topic.name.clone(),
                opened: false,
                picked,
                similarities: similarities.clone(),
                threshold,
            })
        };
        let routing = match choice {
            TopicChoice::New => new(true),
            TopicChoice::Topic(id) => existing(id, true)?,
            TopicChoice::Auto => match similarities.first() {
                Some(best) if best.similarity >= threshold => existing(best.topic, false)?,
                _ => new(false),
            },
        };
        Ok(Routed { routing, embedding })
    }

    /// Answers `user` in the topic `routed` names (opening it if new), in that topic's cache.
    /// On an error the conversation is left as it was.
    pub fn respond_routed(
        &mut self,
        lm: &LoadedModel,
        user: &str,
        routed: Routed,
        params: &GenerateParams,
        sink: &mut dyn TokenSink,
        shared: Option<&mut PrefixTrie>,
    ) -> Result<Generation> {
        let id = routed.routing.topic;
        // A new topic starts from the opening another topic holds, if one does.
        let seed = match routed.routing.opened {
            true => self.seed(
                id,
                &render_history(lm, &self.topic_messages(id), &self.options)?,
            ),
            false => None,
        };
        let topics = self.topics.as_mut().ok_or_else(topics_off)?;
        if routed.routing.opened {
            if topics.get(id).is_some() || id != topics.next_id {
                return Err(EngineError::InvalidRequest(
                    "the conversation's topics changed since this message was routed".into(),
                ));
            }
            topics.topics.push(Topic {
                id,
                name: routed.routing.name.clone(),
                cache: seed.unwrap_or_else(|| self.cache.empty_like()),
                left_out: 0,
            });
            topics.next_id += 1;
        }
        let mut sub = self.sub_session(id)?;
        let result = sub.respond(lm, user, params, sink, shared);
        self.put_back(id, sub);
        let topics = self.topics.as_mut().expect("checked above");
        match &result {
            Ok(generation) => {
                self.messages.push(ChatMessage::new("user", user));
                self.messages
                    .push(ChatMessage::new("assistant", &generation.text));
                topics.of.extend([Some(id), Some(id)]);
                topics.embeddings.extend([Some(routed.embedding), None]);
            }
            Err(_) if routed.routing.opened => {
                topics.topics.retain(|t| t.id != id);
                topics.next_id -= 1;
            }
            Err(_) => {}
        }
        result
    }

    /// Moves user message `index` and its reply to topic `to` (an existing topic or a new
    /// one). Both topics' caches then hold what prefilling their turns from scratch would.
    pub fn move_message(&mut self, lm: &LoadedModel, index: usize, to: TopicChoice) -> Result<()> {
        let topics = self.topics.as_ref().ok_or_else(topics_off)?;
        if self.messages.get(index).map(|m| m.role.as_str()) != Some("user") {
            return Err(EngineError::InvalidRequest(format!(
                "message {index} is not a user message of this conversation ({} messages)",
                self.messages.len()
            )));
        }
        let from = topics.of[index].expect("user messages have a topic");
        let to = match to {
            TopicChoice::Auto => {
                return Err(EngineError::InvalidRequest(
                    "say which topic the message moves to, or a new one".into(),
                ))
            }
            TopicChoice::Topic(id) if id == from => return Ok(()),
            TopicChoice::Topic(id) => topics.get(id).map(|t| t.id).ok_or_else(|| no_topic(id))?,
            TopicChoice::New => topics.next_id,
        };
        let name = name_from(&self.messages[index].content);
        let chunk = GenerateParams::default().prefill_chunk;
        let before = self.topics.clone();
        let topics = self.topics.as_mut().expect("checked above");
        if to == topics.next_id {
            topics.topics.push(Topic {
                id: to,
                name,
                cache: self.cache.empty_like(),
                left_out: 0,
            });
            topics.next_id += 1;
        }
        topics.of[index] = Some(to);
        if self
            .messages
            .get(index + 1)
            .is_some_and(|m| m.role == "assistant")
        {
            topics.of[index + 1] = Some(to);
        }
        topics.prune(None);
        let result = [from, to].into_iter().try_for_each(|id| {
            if self.topics.as_ref().and_then(|t| t.get(id)).is_none() {
                return Ok(());
            }
            let target = render_history(lm, &self.topic_messages(id), &self.options)?;
            let topic = self.topics.as_mut().and_then(|t| t.get_mut(id));
            let topic = topic.expect("checked above");
            topic.left_out = 0;
            prefill_to(&lm.model, &mut topic.cache, &target, chunk).map(|_| ())
        });
        if result.is_err() {
            self.topics = before;
        }
        result
    }

    /// Makes `messages` the conversation (the store's copy of a reopened one, which may have
    /// gone on after its file was written): messages beyond the file's go to the topic of the
    /// last message before them; when the two disagree earlier, topics are turned off.
    pub fn replace_messages(&mut self, messages: Vec<ChatMessage>) {
        if let Some(topics) = self.topics.as_mut() {
            let n = self.messages.len();
            let extends = messages.len() >= n && messages[..n] == self.messages[..];
            if extends {
                let last = topics.of.iter().rev().flatten().next().copied();
                let id = last.or_else(|| topics.topics.first().map(|t| t.id));
                for m in &messages[n..] {
                    topics.of.push(id.filter(|_| m.role != "system"));
                    topics.embeddings.push(None);
                }
                if id.is_some() || messages.len() == n {
                    self.messages = messages;
                    return;
                }
            }
            self.disable_topics();
        }
        self.messages = messages;
    }

    /// Adds a finished turn — `user` and the given `assistant` reply — without generating:
    /// with topics on, to the topic `routed` names (opening it if new; its cache starts from
    /// the opening another topic holds), else to the conversation. The cache is prefilled to
    /// hold it; returns the tokens run through the model.
    pub fn record_turn(
        &mut self,
        lm: &LoadedModel,
        user: &str,
        assistant: &str,
        routed: Option<Routed>,
    ) -> Result<usize> {
        let chunk = GenerateParams::default().prefill_chunk;
        self.messages.push(ChatMessage::new("user", user));
        self.messages.push(ChatMessage::new("assistant", assistant));
        let (Some(topics), Some(routed)) = (self.topics.as_mut(), routed) else {
            if self.topics.is_some() {
                self.messages.truncate(self.messages.len() - 2);
                return Err(EngineError::InvalidRequest(
                    "with topics on, say which topic the turn goes to".into(),
                ));
            }
            let target = render_history(lm, &self.messages, &self.options)?;
            return prefill_to(&lm.model, &mut self.cache, &target, chunk);
        };
        let id = routed.routing.topic;
        topics.of.extend([Some(id), Some(id)]);
        topics.embeddings.extend([Some(routed.embedding), None]);
        if routed.routing.opened {
            topics.topics.push(Topic {
                id,
                name: routed.routing.name,
                cache: self.cache.empty_like(),
                left_out: 0,
            });
            topics.next_id = topics.next_id.max(id + 1);
        }
        let target = render_history(lm, &self.topic_messages(id), &self.options)?;
        let seed = self.seed(id, &target);
        let topics = self.topics.as_mut().expect("on");
        let topic = topics.get_mut(id).ok_or_else(|| no_topic(id))?;
        if topic.cache.tokens.is_empty() {
            if let Some(seed) = seed {
                topic.cache = seed;
            }
        }
        prefill_to(&lm.model, &mut topic.cache, &target, chunk)
    }

    /// The cache — of another topic, or the conversation's own — sharing the most tokens with
    /// `target` (the opening, at least), for topic `id` to start from.
    fn seed(&self, id: u32, target: &[u32]) -> Option<SequenceCache> {
        let shared = |c: &SequenceCache| crate::generate::common_prefix(&c.tokens, target);
        let topics = self.topics.as_ref()?;
        let best = topics
            .topics
            .iter()
            .filter(|t| t.id != id)
            .map(|t| &t.cache)
            .chain([&self.cache])
            .max_by_key(|c| shared(c))
            .filter(|c| shared(c) > 0)?;
        let mut seed = best.clone();
        seed.truncate(shared(best));
        Some(seed)
    }

    /// The conversation of topic `id` alone, holding its cache (taken out of the topic).
    fn sub_session(&mut self, id: u32) -> Result<ChatSession> {
        let messages = self.topic_messages(id);
        let topic = self
            .topics
            .as_mut()
            .and_then(|t| t.get_mut(id))
            .ok_or_else(|| no_topic(id))?;
        let cache = take_cache(&mut topic.cache);
        Ok(ChatSession {
            messages,
            cache,
            options: self.options.clone(),
            left_out: topic.left_out,
            adapter: self.adapter.clone(),
            topics: None,
        })
    }

    /// Gives topic `id` back the cache (and context state) its sub-conversation worked on.
    fn put_back(&mut self, id: u32, sub: ChatSession) {
        let topic = self.topics.as_mut().and_then(|t| t.get_mut(id));
        let topic = topic.expect("taken by sub_session");
        topic.cache = sub.cache;
        topic.left_out = sub.left_out;
    }

    /// [`ChatSession::regenerate`] with topics: the last reply again, in its topic.
    pub(super) fn regenerate_in_topic(
        &mut self,
        lm: &LoadedModel,
        params: &GenerateParams,
        sink: &mut dyn TokenSink,
    ) -> Result<Generation> {
        // `regenerate` checked that the last message is a reply; replies have a topic.
        let topics = self.topics.as_ref().ok_or_else(topics_off)?;
        let id = topics
            .of
            .last()
            .copied()
            .flatten()
            .expect("a reply's topic");
        let mut sub = self.sub_session(id)?;
        let result = sub.regenerate(lm, params, sink);
        self.put_back(id, sub);
        if let Ok(generation) = &result {
            let last = self.messages.last_mut().expect("a reply");
            *last = ChatMessage::new("assistant", &generation.text);
        }
        result
    }

    /// [`ChatSession::edit`] with topics: the later messages go (from every topic), the edited
    /// message stays in its topic and is answered there.
    pub(super) fn edit_in_topic(
        &mut self,
        lm: &LoadedModel,
        index: usize,
        content: &str,
        params: &GenerateParams,
        sink: &mut dyn TokenSink,
    ) -> Result<Generation> {
        let id = self
            .topics
            .as_ref()
            .ok_or_else(topics_off)?
            .of
            .get(index)
            .copied()
            .flatten()
            .expect("checked by edit: a user message");
        let before = (self.messages.clone(), self.topics.clone());
        self.truncate_topics(lm, index, Some(id))?;
        let embedding = self.embedder(lm)?.embed(lm, content)?;
        let topics = self.topics.as_ref().expect("on");
        let routing = Routing {
            topic: id,
            name: topics.get(id).map(|t| t.name.clone()).unwrap_or_default(),
            opened: false,
            picked: true,
            similarities: topics.similarities(&embedding),
            threshold: topics.settings.threshold,
        };
        let routed = Routed { routing, embedding };
        self.respond_routed(lm, content, routed, params, sink, None)
            .inspect_err(|_| {
                (self.messages, self.topics) = before;
            })
    }

    /// Keeps the first `end` messages; topics left without messages go (but `keep`), and
    /// every topic's cache keeps only what is still valid.
    pub(super) fn truncate_topics(
        &mut self,
        lm: &LoadedModel,
        end: usize,
        keep: Option<u32>,
    ) -> Result<()> {
        self.messages.truncate(end);
        let Some(topics) = self.topics.as_mut() else {
            return Ok(());
        };
        topics.of.truncate(end);
        topics.embeddings.truncate(end);
        topics.prune(keep);
        let ids: Vec<u32> = topics.topics.iter().map(|t| t.id).collect();
        for id in ids {
            let target = render_history(lm, &self.topic_messages(id), &self.options)?;
            let topic = self.topics.as_mut().and_then(|t| t.get_mut(id));
            let cache = &mut topic.expect("listed above").cache;
            cache.truncate(crate::generate::common_prefix(&cache.tokens, &target));
        }
        Ok(())
    }

    fn embedder(&self, lm: &LoadedModel) -> Result<Embedder> {
        let topics = self.topics.as_ref().ok_or_else(topics_off)?;
        Ok(Embedder {
            layer: topics.settings.layer_for(lm),
            center: topics.center.clone(),
        })
    }
}

/// The cache, leaving an empty one of the same storage in its place.
fn take_cache(cache: &mut SequenceCache) -> SequenceCache {
    let empty = cache.empty_like();
    std::mem::replace(cache, empty)
}

fn embed_messages(
    lm: &LoadedModel,
    embedder: &Embedder,
    messages: &[ChatMessage],
) -> Result<Vec<Option<Vec<f32>>>> {
    messages
        .iter()
        .map(|m| {
            (m.role == "user")
                .then(|| embedder.embed(lm, &m.content))
                .transpose()
        })
        .collect()
}

fn topics_off() -> EngineError {
    EngineError::InvalidRequest("this conversation does not keep topics; turn them on first".into())
}

fn no_topic(id: u32) -> EngineError {
    EngineError::InvalidRequest(format!("this conversation has no topic {id}"))
}

/// What a conversation's topics look like on disk (the caches go beside, one per topic).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SavedTopics {
    pub settings: TopicSettings,
    pub next_id: u32,
    pub of: Vec<Option<u32>>,
    pub embeddings: Vec<Option<Vec<f32>>>,
    pub center: Vec<f32>,
    pub topics: Vec<SavedTopic>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SavedTopic {
    pub id: u32,
    pub name: String,
    pub left_out: usize,
    /// The tokens its cache holds (empty: no cache saved).
    pub tokens: Vec<u32>,
}

impl Topics {
    /// The topics' description for a file, and the caches to write, in order (empty ones
    /// left out).
    pub(super) fn to_saved(&self) -> (SavedTopics, Vec<&SequenceCache>) {
        let saved = SavedTopics {
            settings: self.settings.clone(),
            next_id: self.next_id,
            of: self.of.clone(),
            embeddings: self.embeddings.clone(),
            center: self.center.clone(),
            topics: self
                .topics
                .iter()
                .map(|t| SavedTopic {
                    id: t.id,
                    name: t.name.clone(),
                    left_out: t.left_out,
                    tokens: t.cache.tokens.clone(),
                })
                .collect(),
        };
        let caches = self
            .topics
            .iter()
            .map(|t| &t.cache)
            .filter(|c| !c.tokens.is_empty())
            .collect();
        (saved, caches)
    }

    /// Topics from their description and the layers saved with it (`n_layers` per cached
    /// topic, in order); `empty` is an empty cache of the conversation's storage.
    pub(super) fn from_saved(
        saved: SavedTopics,
        mut layers: Vec<crate::cache::KvCache>,
        n_layers: usize,
        n_messages: usize,
        empty: &SequenceCache,
    ) -> std::result::Result<Topics, String> {
        let cached = saved.topics.iter().filter(|t| !t.tokens.is_empty()).count();
        if layers.len() != cached * n_layers {
            return Err(format!(
                "it holds {} cache layers, not {n_layers} for each of {cached} topics",
                layers.len()
            ));
        }
        if saved.of.len() != n_messages || saved.embeddings.len() != n_messages {
            return Err("its topics do not match its messages".into());
        }
        let known = |id: &u32| saved.topics.iter().any(|t| t.id == *id);
        if let Some(id) = saved.of.iter().flatten().find(|id| !known(id)) {
            return Err(format!(
                "a message belongs to topic {id}, which it does not have"
            ));
        }
        if saved.topics.iter().any(|t| t.id >= saved.next_id) {
            return Err("its next topic number is taken".into());
        }
        let dim = saved.center.len();
        if saved.embeddings.iter().flatten().any(|e| e.len() != dim) {
            return Err("its embeddings differ in length".into());
        }
        let mut topics = Vec::new();
        for t in saved.topics {
            let cache = if t.tokens.is_empty() {
                empty.empty_like()
            } else {
                let rest = layers.split_off(n_layers);
                let mine = std::mem::replace(&mut layers, rest);
                if mine.iter().any(|l| l.offset() != t.tokens.len()) {
                    return Err(format!("topic {}'s tokens and cache disagree", t.id));
                }
                SequenceCache {
                    tokens: t.tokens,
                    layers: mine,
                }
            };
            topics.push(Topic {
                id: t.id,
                name: t.name,
                cache,
                left_out: t.left_out,
            });
        }
        Ok(Topics {
            settings: saved.settings,
            topics,
            of: saved.of,
            embeddings: saved.embeddings,
            center: saved.center,
            next_id: saved.next_id,
        })
    }

    /// Forgets message `index` (a system message taken away).
    pub(super) fn remove_message(&mut self, index: usize) {
        if index < self.of.len() {
            self.of.remove(index);
            self.embeddings.remove(index);
        }
    }

    /// A system message put first.
    pub(super) fn insert_system(&mut self) {
        self.of.insert(0, None);
        self.embeddings.insert(0, None);
    }

    /// Bytes of the topics' caches.
    pub fn nbytes(&self) -> usize {
        self.topics.iter().map(|t| t.cache.nbytes()).sum()
    }

    /// Tokens the topics' caches hold.
    pub fn cached_tokens(&self) -> usize {
        self.topics.iter().map(|t| t.cache.tokens.len()).sum()
    }
}
