//! Multi-turn state: a follow-up keeps the topic and changes one constraint; a new topic
//! starts over. A follow-up is a turn of constraints only: one whose own words name a
//! product (see [`super::SlotExtractor::product_words`]) starts a new topic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::topic::{MentionKind, Mentions};
use super::{IntentClass, Slots, Understanding};

/// The dialogue state a session keeps between turns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DialogueState {
    pub constraints: Slots,
    pub turns: u32,
    /// The words of the turn that started the topic: what a follow-up searches for. Empty
    /// when that turn stated only a price or a preference: search then browses.
    #[serde(default)]
    pub topic: String,
    /// What the topic's follow-ups named that titles can match (a brand, a colour), one per
    /// kind, the latest kept: searched for beside the topic.
    #[serde(default)]
    pub mentions: BTreeMap<MentionKind, String>,
}

impl DialogueState {
    /// Folds one turn (its text, its slots and the words that name a product) into the
    /// state and reports what was understood.
    pub fn advance(&mut self, intent: IntentClass, confidence: f32, read: Turn) -> Understanding {
        let Turn {
            query,
            slots: turn,
            product_words,
            mentions,
        } = read;
        let follow_up = self.is_follow_up(intent, &turn, &product_words);
        // A turn of a price or a preference alone names nothing to search for.
        let names_something = !product_words.is_empty()
            || turn.category.is_some()
            || turn.brand.is_some()
            || !turn.attributes.is_empty();
        // A follow-up keeps the topic, unless the topic so far named nothing ("under 500",
        // then "red ones"): then this turn's words are the first worth searching for.
        if !follow_up || self.topic.is_empty() {
            self.topic = if names_something {
                query
            } else {
                String::new()
            };
            self.mentions.clear();
        } else {
            self.mentions.extend(mentions);
        }
        self.constraints = if follow_up {
            refine(&self.constraints, &turn)
        } else {
            turn.clone()
        };
        self.turns += 1;
        Understanding {
            intent,
            confidence,
            follow_up,
            turn,
            constraints: self.constraints.clone(),
            topic: self.searched(),
        }
    }

    /// The topic's words and what its follow-ups named since: "最便宜的手机 oppo".
    fn searched(&self) -> String {
        let words =
            std::iter::once(self.topic.as_str()).chain(self.mentions.values().map(String::as_str));
        let words: Vec<&str> = words.filter(|word| !word.is_empty()).collect();
        words.join(" ")
    }

    fn is_follow_up(&self, intent: IntentClass, turn: &Slots, product_words: &str) -> bool {
        if self.turns == 0 || (self.constraints.is_empty() && self.topic.is_empty()) {
            return false;
        }
        // Words that name a product, unmapped to any category, are a new need.
        if turn.category.is_none() && !product_words.is_empty() {
            return false;
        }
        // Naming another category is a new topic, whatever the classifier says.
        if let Some(category) = &turn.category
            && self.constraints.category.as_ref() != Some(category)
        {
            return false;
        }
        intent == IntentClass::Refine || (turn.category.is_none() && turn.has_constraints())
    }
}

/// One query as read: its text, its constraints, and the words naming a product need.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    pub query: String,
    pub slots: Slots,
    pub product_words: String,
    pub mentions: Mentions,
}

/// The previous constraints with every constraint this turn states replacing the old one.
fn refine(previous: &Slots, turn: &Slots) -> Slots {
    let mut merged = previous.clone();
    if turn.category.is_some() {
        merged.category = turn.category.clone();
        merged.category_confidence = turn.category_confidence;
    }
    if turn.brand.is_some() {
        merged.brand = turn.brand.clone();
        merged.brand_confidence = turn.brand_confidence;
    }
    // A new price bound replaces the old range: "4000元以内的呢？" after "8000元以内" means ≤ 4000.
    if turn.price_min.is_some() || turn.price_max.is_some() {
        merged.price_min = turn.price_min;
        merged.price_max = turn.price_max;
        merged.currency = turn.currency.clone().or(merged.currency);
    }
    merged.attributes.extend(turn.attributes.clone());
    if turn.preference.is_some() {
        merged.preference = turn.preference;
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::Preference;

    fn slots(
        category: Option<&str>,
        price_max: Option<f64>,
        preference: Option<Preference>,
    ) -> Slots {
        Slots {
            category: category.map(str::to_string),
            price_max,
            preference,
            ..Default::default()
        }
    }

    /// A turn that states only its slots.
    fn said(slots: Slots) -> Turn {
        Turn {
            query: format!("{slots:?}"),
            slots,
            ..Turn::default()
        }
    }

    /// Plays `turns` (intent, slots of the turn) and checks (follow_up, constraints) after each.
    fn check(turns: Vec<(IntentClass, Slots)>, expected: Vec<(bool, Slots)>) {
        let mut state = DialogueState::default();
        for ((intent, turn), (follow_up, constraints)) in turns.into_iter().zip(expected) {
            let understanding = state.advance(intent, 1.0, said(turn));
            assert_eq!(
                (understanding.follow_up, understanding.constraints),
                (follow_up, constraints)
            );
        }
    }

    /// (query, product words, price cap, follow_up, topic) per turn: a price alone names no
    /// topic; an unmapped need is kept by a follow-up and replaced by a turn that names
    /// another.
    #[test]
    fn a_follow_up_keeps_an_unmapped_need_until_another_is_named() {
        let turns = [
            ("有没有8000元以内的？", "", Some(8000.0), false, ""),
            (
                "running shoes",
                "running shoes",
                None,
                false,
                "running shoes",
            ),
            ("under 1500", "", Some(1500.0), true, "running shoes"),
            ("1000以内的呢", "", Some(1000.0), true, "running shoes"),
            ("red dress", "dress", None, false, "red dress"),
        ];
        let mut state = DialogueState::default();
        for (query, words, price_max, follow_up, topic) in turns {
            let read = Turn {
                query: query.to_string(),
                slots: slots(None, price_max, None),
                product_words: words.to_string(),
                mentions: Vec::new(),
            };
            let understanding = state.advance(IntentClass::Other, 0.0, read);
            assert_eq!(
                (understanding.follow_up, understanding.topic.as_str()),
                (follow_up, topic),
                "{query}"
            );
        }
    }

    #[test]
    fn classic_three_turns_keep_the_category_and_replace_the_price() {
        use IntentClass::*;
        let value = Some(Preference::BestValue);
        check(
            vec![
                (Browse, slots(Some("手机"), None, value)),
                (Refine, slots(None, Some(8000.0), None)),
                (Refine, slots(None, Some(4000.0), None)),
            ],
            vec![
                (false, slots(Some("手机"), None, value)),
                (true, slots(Some("手机"), Some(8000.0), value)),
                (true, slots(Some("手机"), Some(4000.0), value)),
            ],
        );
    }

    #[test]
    fn a_new_category_or_an_unconstrained_query_starts_over() {
        use IntentClass::*;
        check(
            vec![
                (Browse, slots(Some("手机"), Some(8000.0), None)),
                (Browse, slots(Some("电脑"), None, None)),
                (Other, slots(None, None, None)),
                // A constraint with no category refines even when the classifier is unsure.
                (Browse, slots(Some("平板"), None, None)),
                (Other, slots(None, Some(3000.0), None)),
            ],
            vec![
                (false, slots(Some("手机"), Some(8000.0), None)),
                (false, slots(Some("电脑"), None, None)),
                (false, slots(None, None, None)),
                (false, slots(Some("平板"), None, None)),
                (true, slots(Some("平板"), Some(3000.0), None)),
            ],
        );
    }

    /// A brand a follow-up names is searched for beside the topic, until the topic changes.
    #[test]
    fn a_follow_up_s_brand_is_searched_beside_the_topic() {
        let oppo = vec![(MentionKind::Brand, "oppo".to_string())];
        let turns = [
            ("最便宜的手机", "", Vec::new(), "最便宜的手机"),
            ("OPPO的呢", "", oppo, "最便宜的手机 oppo"),
            ("有没有1500以下的", "", Vec::new(), "最便宜的手机 oppo"),
            ("boots", "boots", Vec::new(), "boots"),
        ];
        let mut state = DialogueState::default();
        for (query, words, mentions, searched) in turns {
            let read = Turn {
                query: query.to_string(),
                slots: slots(Some("手机").filter(|_| words.is_empty()), None, None),
                product_words: words.to_string(),
                mentions,
            };
            let understanding = state.advance(IntentClass::Refine, 1.0, read);
            assert_eq!(understanding.topic, searched, "{query}");
        }
    }
}
