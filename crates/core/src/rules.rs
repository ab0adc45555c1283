//! agentgateway's authorization rule sets (`authorization.rules`, `mcpAuthorization.rules`):
//! CEL expressions written as plain strings (allow rules) or as `{allow: …}`, `{deny: …}`,
//! `{require: …}`. Shared by the HTTP and MCP authorization policies so both decide alike.
//!
//! The decision, as agentgateway's `RuleSets::validate`: any true `deny` denies; any `require`
//! that is not true denies; then any true `allow` allows; with no allow rules at all the
//! request is allowed, with allow rules and none true it is denied. An expression that fails
//! (a missing variable, a type error) counts as false.

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::telemetry::cel::{Evaluator, Expression};

/// One rule set (one policy block's `rules`).
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Rules of which one must be true (when there are any).
    pub allow: Vec<Expression>,
    /// Rules none of which may be true.
    pub deny: Vec<Expression>,
    /// Rules all of which must be true.
    pub require: Vec<Expression>,
}

/// One rule as written.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRule {
    Plain(Expression),
    Tagged(TaggedRule),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaggedRule {
    allow: Option<Expression>,
    deny: Option<Expression>,
    require: Option<Expression>,
}

impl<'de> Deserialize<'de> for RuleSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Vec<serde_yaml_ng::Value> = Vec::deserialize(d)?;
        let mut set = RuleSet::default();
        for (i, value) in raw.into_iter().enumerate() {
            // Each rule parsed on its own, so an error names the rule and its CEL message.
            let rule = match &value {
                serde_yaml_ng::Value::String(s) => RawRule::Plain(Expression::compile(s).map_err(|e| de::Error::custom(format!("rule {i} {e}")))?),
                _ => serde_yaml_ng::from_value(value).map_err(|e| {
                    de::Error::custom(format!("rule {i} must be a CEL string or one of `allow`, `deny`, `require` ({e})"))
                })?,
            };
            match rule {
                RawRule::Plain(e) => set.allow.push(e),
                RawRule::Tagged(TaggedRule { allow: Some(e), deny: None, require: None }) => set.allow.push(e),
                RawRule::Tagged(TaggedRule { allow: None, deny: Some(e), require: None }) => set.deny.push(e),
                RawRule::Tagged(TaggedRule { allow: None, deny: None, require: Some(e) }) => set.require.push(e),
                RawRule::Tagged(_) => {
                    return Err(de::Error::custom(format!("rule {i} must set exactly one of `allow`, `deny`, `require`")))
                }
            }
        }
        Ok(set)
    }
}

fn is_true(v: Option<&::cel::Value>) -> bool {
    matches!(v, Some(::cel::Value::Bool(true)))
}

impl RuleSet {
    /// Every expression, for working out which variables a request must bind.
    pub fn expressions(&self) -> impl Iterator<Item = &Expression> {
        self.allow.iter().chain(&self.deny).chain(&self.require)
    }

    /// Whether there are no rules (everything is allowed).
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && self.require.is_empty()
    }

    /// This set and `general`'s rules together (agentgateway merges authorization rule sets
    /// across levels instead of letting the specific one replace the general one).
    pub fn merged_with(&self, general: &RuleSet) -> RuleSet {
        let join = |a: &[Expression], b: &[Expression]| a.iter().chain(b).cloned().collect();
        RuleSet { allow: join(&general.allow, &self.allow), deny: join(&general.deny, &self.deny), require: join(&general.require, &self.require) }
    }

    /// The decision for the variables `ev` evaluates over.
    pub fn allows<'e>(&'e self, ev: &mut Evaluator<'e, '_>) -> bool {
        if self.deny.iter().any(|r| is_true(ev.eval(r))) {
            return false;
        }
        if !self.require.iter().all(|r| is_true(ev.eval(r))) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|r| is_true(ev.eval(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::cel::{json_to_cel, with_evaluator};

    fn decide(rules: &str, vars: serde_json::Value) -> bool {
        let set: RuleSet = serde_yaml_ng::from_str(rules).unwrap();
        with_evaluator(
            |scope| {
                for (k, v) in vars.as_object().unwrap() {
                    scope.add_variable_from_value(k.as_str(), json_to_cel(v.clone()));
                }
            },
            |ev| set.allows(ev),
        )
    }

    #[test]
    fn deny_wins_require_must_hold_and_allow_lists_close() {
        let j = |sub: &str| serde_json::json!({"jwt": {"sub": sub, "admin": sub == "root"}});
        assert!(decide("[]", j("a")));
        assert!(decide("['jwt.sub == \"a\"']", j("a")));
        assert!(!decide("['jwt.sub == \"a\"']", j("b")));
        assert!(!decide("[{deny: 'jwt.sub == \"a\"'}]", j("a")));
        assert!(decide("[{deny: 'jwt.sub == \"a\"'}]", j("b")), "deny rules alone are a denylist");
        assert!(!decide("[{require: 'jwt.admin'}, 'true']", j("a")));
        assert!(decide("[{require: 'jwt.admin'}, 'true']", j("root")));
        assert!(!decide("['true', {deny: 'true'}]", j("a")), "deny beats allow");
        // Failing expressions are false: a missing claim neither allows nor denies.
        assert!(!decide("['jwt.missing == 1']", j("a")));
        assert!(decide("[{deny: 'jwt.missing == 1'}]", j("a")));
        assert!(!decide("[{require: 'jwt.missing == 1'}]", j("a")));
        assert!(!decide("['jwt.sub == \"a\"']", serde_json::json!({})), "no principal: the allow rule fails");
    }

    #[test]
    fn bad_rules_are_named() {
        let err = |s: &str| serde_yaml_ng::from_str::<RuleSet>(s).unwrap_err().to_string();
        assert!(err("[{allow: 'true', deny: 'false'}]").contains("rule 0 must set exactly one"));
        assert!(err("['true', {permit: 'true'}]").contains("rule 1"));
        assert!(err("['jwt.sub ==']").contains("rule 0 invalid CEL"));
    }

    #[test]
    fn merged_sets_keep_every_rule() {
        let a: RuleSet = serde_yaml_ng::from_str("['true', {deny: 'false'}]").unwrap();
        let b: RuleSet = serde_yaml_ng::from_str("[{require: 'true'}]").unwrap();
        let m = b.merged_with(&a);
        assert_eq!((m.allow.len(), m.deny.len(), m.require.len()), (1, 1, 1));
    }
}
