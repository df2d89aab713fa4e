//! The agents a deployment offers (`AGENTS`, or the one-agent shorthand `AGENT_URL` /
//! `STATE_MACHINE_ARN`, named `default`): each message goes to its sender's selected agent,
//! else to the default one. `/agents` lists them.

use super::Agent;
use super::contract::DEFAULT_AGENT_NAME;
use std::sync::Arc;

/// One agent: how users see it in the `/agents` list, and the port that asks it.
#[derive(Clone)]
pub struct NamedAgent {
    pub name: String,
    pub description: Option<String>,
    pub agent: Arc<dyn Agent>,
}

/// Every agent of the deployment, and the default one. Never empty.
#[derive(Clone)]
pub struct Agents {
    agents: Vec<NamedAgent>,
    default: usize,
}

impl Agents {
    /// One agent named [`DEFAULT_AGENT_NAME`].
    pub fn single(agent: Arc<dyn Agent>) -> Self {
        Self {
            agents: vec![NamedAgent {
                name: DEFAULT_AGENT_NAME.to_owned(),
                description: None,
                agent,
            }],
            default: 0,
        }
    }

    /// `agents` with `default` as the default (the first when `None`); `None` when `agents` is
    /// empty or `default` names none of them (the configuration refuses both at start-up).
    pub fn new(agents: Vec<NamedAgent>, default: Option<&str>) -> Option<Self> {
        let default = match default {
            Some(name) => agents.iter().position(|agent| agent.name == name)?,
            None if agents.is_empty() => return None,
            None => 0,
        };
        Some(Self { agents, default })
    }

    /// The default agent.
    pub fn default_agent(&self) -> &NamedAgent {
        &self.agents[self.default]
    }

    /// The agent called `name`, if the deployment has one.
    pub fn get(&self, name: &str) -> Option<&NamedAgent> {
        self.agents.iter().find(|agent| agent.name == name)
    }

    /// The agent a session selected, or the default when it selected none or one that is no
    /// longer configured.
    pub fn selected(&self, name: Option<&str>) -> &NamedAgent {
        name.and_then(|name| self.get(name))
            .unwrap_or_else(|| self.default_agent())
    }

    /// Every agent, in the configured order.
    pub fn all(&self) -> &[NamedAgent] {
        &self.agents
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::ScriptedAgent;

    fn named(name: &str) -> NamedAgent {
        NamedAgent {
            name: name.to_owned(),
            description: None,
            agent: Arc::new(ScriptedAgent::replying_text(name)),
        }
    }

    #[test]
    fn a_selection_falls_back_to_the_default_when_unknown_or_absent() {
        let agents = Agents::new(vec![named("k8s"), named("cost")], Some("cost")).unwrap();
        assert_eq!(agents.default_agent().name, "cost");
        assert_eq!(agents.selected(Some("k8s")).name, "k8s");
        assert_eq!(agents.selected(Some("retired")).name, "cost");
        assert_eq!(agents.selected(None).name, "cost");
    }

    #[test]
    fn the_default_is_the_first_unless_named_and_must_exist() {
        assert_eq!(
            Agents::new(vec![named("k8s"), named("cost")], None)
                .unwrap()
                .default_agent()
                .name,
            "k8s"
        );
        assert!(Agents::new(vec![named("k8s")], Some("cost")).is_none());
        assert!(Agents::new(Vec::new(), None).is_none());
        let single = Agents::single(Arc::new(ScriptedAgent::replying_text("hi")));
        assert_eq!(single.all().len(), 1);
        assert_eq!(single.default_agent().name, DEFAULT_AGENT_NAME);
    }
}
