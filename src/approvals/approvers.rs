//! `APPROVERS`: who may approve, written like `ALLOWED_SENDERS` (phone numbers in any E.164
//! spelling and BSUIDs, comma-separated) but never `*`: an approval is worth something only
//! when its approvers are named. An approver need not be an allowed sender.
//!
//! People are compared by one canonical identity, [`Identity`]: the phone number (digits) and
//! the BSUID both, two identities being the same person when either matches. Never by the
//! WhatsApp profile name, which anyone can set to anything.

use crate::domain::{Recipient, Sender, is_bsuid, mask, normalize_phone};
use serde::{Deserialize, Serialize};

/// One person: a phone number (digits), a BSUID, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsuid: Option<String>,
}

impl Identity {
    /// A phone number (any E.164 spelling) or a BSUID; `None` for anything else.
    pub fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        if is_bsuid(entry) {
            return Some(Self {
                phone: None,
                bsuid: Some(entry.to_owned()),
            });
        }
        normalize_phone(entry).map(|phone| Self {
            phone: Some(phone),
            bsuid: None,
        })
    }

    /// Who sent a message: their phone number (normalised) and BSUID, as WhatsApp gave them.
    pub fn of(sender: &Sender) -> Self {
        Self {
            phone: sender.phone.as_deref().and_then(normalize_phone),
            bsuid: sender.bsuid.clone().filter(|bsuid| !bsuid.is_empty()),
        }
    }

    /// Whether both name the same person: the same phone number, or the same BSUID.
    pub fn same(&self, other: &Identity) -> bool {
        let phones = matches!((&self.phone, &other.phone), (Some(a), Some(b)) if a == b);
        let bsuids = matches!((&self.bsuid, &other.bsuid), (Some(a), Some(b)) if a == b);
        phones || bsuids
    }

    /// The stable id: the phone number when known, else the BSUID.
    pub fn id(&self) -> &str {
        self.phone
            .as_deref()
            .or(self.bsuid.as_deref())
            .unwrap_or_default()
    }

    /// Where to message them: their phone number, else their BSUID.
    pub fn recipient(&self) -> Option<Recipient> {
        match (&self.phone, &self.bsuid) {
            (Some(phone), _) => Some(Recipient::Phone(phone.clone())),
            (None, Some(bsuid)) => Some(Recipient::Bsuid(bsuid.clone())),
            (None, None) => None,
        }
    }

    /// The masked id, for logs and for naming someone without a configured name.
    pub fn masked(&self) -> String {
        mask(self.id())
    }

    /// This identity with what `other` (the same person) adds: a BSUID learned from a tap.
    pub fn merged(&self, other: &Identity) -> Identity {
        Identity {
            phone: self.phone.clone().or_else(|| other.phone.clone()),
            bsuid: self.bsuid.clone().or_else(|| other.bsuid.clone()),
        }
    }
}

/// The people who may approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approvers {
    people: Vec<Identity>,
}

impl Approvers {
    /// Reads `APPROVERS`. Refuses `*`, an empty list, and entries that are neither a phone
    /// number nor a BSUID (quoted masked). A person listed twice counts once.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut people: Vec<Identity> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                return Err("may not be `*`: name the people who may approve \
                            (phone numbers or BSUIDs, comma-separated)"
                    .to_owned());
            }
            let Some(person) = Identity::parse(entry) else {
                return Err(format!(
                    "entry {} is neither a phone number (7-15 digits) nor a BSUID (CC.id)",
                    mask(entry)
                ));
            };
            if !people.iter().any(|known| known.same(&person)) {
                people.push(person);
            }
        }
        if people.is_empty() {
            return Err("is empty: name the people who may approve".to_owned());
        }
        Ok(Self { people })
    }

    /// Everyone, in the configured order.
    pub fn all(&self) -> &[Identity] {
        &self.people
    }

    /// The approver this sender is, if any.
    pub fn find(&self, sender: &Sender) -> Option<&Identity> {
        let who = Identity::of(sender);
        self.people.iter().find(|person| person.same(&who))
    }

    /// The approvers a request names (each must be one of `APPROVERS`), in the order named,
    /// once each; `Err` names the first entry that is not (masked).
    pub fn select(&self, named: &[String]) -> Result<Vec<Identity>, String> {
        let mut chosen: Vec<Identity> = Vec::new();
        for entry in named {
            let person = Identity::parse(entry)
                .and_then(|wanted| self.people.iter().find(|p| p.same(&wanted)))
                .ok_or_else(|| format!("{} is not one of APPROVERS", mask(entry.trim())))?;
            if !chosen.contains(person) {
                chosen.push(person.clone());
            }
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(phone: Option<&str>, bsuid: Option<&str>) -> Sender {
        Sender {
            phone: phone.map(str::to_owned),
            bsuid: bsuid.map(str::to_owned),
            display_name: Some("Trust Me".to_owned()),
        }
    }

    #[test]
    fn approvers_are_named_never_everyone() {
        assert!(
            Approvers::parse("*")
                .unwrap_err()
                .contains("may not be `*`")
        );
        assert!(Approvers::parse("+14155551234, *").is_err());
        assert!(Approvers::parse(" , ").unwrap_err().contains("empty"));
        let error = Approvers::parse("+14155551234, alice").unwrap_err();
        assert!(error.contains("neither a phone number"), "{error}");
        let approvers =
            Approvers::parse("+1 (415) 555-1234, US.13491208655302741918, 14155551234").unwrap();
        assert_eq!(
            approvers.all().len(),
            2,
            "the same number twice counts once"
        );
    }

    #[test]
    fn one_person_by_phone_or_by_bsuid_never_by_profile_name() {
        let approvers = Approvers::parse("+14155551234, US.999").unwrap();
        assert!(approvers.find(&sender(Some("14155551234"), None)).is_some());
        assert!(
            approvers
                .find(&sender(None, Some("US.999")))
                .is_some_and(|p| p.bsuid.as_deref() == Some("US.999"))
        );
        assert!(
            approvers
                .find(&sender(Some("14155550000"), Some("US.999")))
                .is_some(),
            "a BSUID names the person whatever number they write from"
        );
        assert!(approvers.find(&sender(Some("14155550000"), None)).is_none());
        let a = Identity::parse("+14155551234").unwrap();
        let b = Identity::of(&sender(Some("14155551234"), Some("US.1")));
        assert!(a.same(&b) && b.same(&a));
        assert_eq!(a.merged(&b).bsuid.as_deref(), Some("US.1"));
        assert!(!Identity::default().same(&Identity::default()));
    }

    #[test]
    fn a_request_may_name_only_configured_approvers() {
        let approvers = Approvers::parse("+14155551234, +14155550002").unwrap();
        let chosen = approvers
            .select(&["14155550002".into(), "+1 415 555 0002".into()])
            .unwrap();
        assert_eq!(chosen.len(), 1);
        let error = approvers.select(&["+14155559999".into()]).unwrap_err();
        assert!(error.contains("not one of APPROVERS") && !error.contains("14155559999"));
    }
}
