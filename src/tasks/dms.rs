//! Delayed match-to-sample (placeholder until the task lands)
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DmsConfig { pub delay: f64 }
impl DmsConfig { pub fn validate(&self, _dt: f64) -> anyhow::Result<()> { Ok(()) } }
