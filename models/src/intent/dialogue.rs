//! Multi-turn state: a follow-up keeps the topic and changes one constraint; a new topic
//! starts over.

use serde::{Deserialize, Serialize};

use super::{IntentClass, Slots, Understanding};

/// The dialogue state a session keeps between turns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DialogueState {
    pub constraints: Slots,
    pub turns: u32,
}

impl DialogueState {
    /// Folds one turn into the state and reports what was understood.
    pub fn advance(&mut self, intent: IntentClass, confidence: f32, turn: Slots) -> Understanding {
        let follow_up = self.is_follow_up(intent, &turn);
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
        }
    }

    fn is_follow_up(&self, intent: IntentClass, turn: &Slots) -> bool {
        if self.turns == 0 || self.constraints.is_empty() {
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

    /// Plays `turns` (intent, slots of the turn) and checks (follow_up, constraints) after each.
    fn check(turns: Vec<(IntentClass, Slots)>, expected: Vec<(bool, Slots)>) {
        let mut state = DialogueState::default();
        for ((intent, turn), (follow_up, constraints)) in turns.into_iter().zip(expected) {
            let understanding = state.advance(intent, 1.0, turn);
            assert_eq!(
                (understanding.follow_up, understanding.constraints),
                (follow_up, constraints)
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
}
