//! Bedrock's batch-inference quotas as Service Quotas reports them (`ListServiceQuotas` for
//! service code `bedrock`), matched to models by name: each quota's name ends in "for <model>",
//! where the model is a display name ("Claude 3 Haiku", "Llama 3.1 8B Instruct") or an id.
//!
//! A quota names a model when the words of that name, split into runs of letters and of digits
//! ("Llama 3.1 8B" → llama 3 1 8 b), appear in the same order among the words of the model id
//! ("meta.llama3-1-8b-instruct-v1:0" → meta llama 3 1 8 b instruct v 1 0); of several, the one
//! with the most words wins ("Claude 3.5 Sonnet v2" over "Claude 3.5 Sonnet"), and a tie names
//! none (the defaults apply).

/// `Minimum number of records per batch inference job for <model>`.
const MIN_RECORDS: &str = "Minimum number of records per batch inference job for ";
/// `Sum of in-progress and submitted batch inference jobs using a base model for <model>`.
const CONCURRENT_JOBS: &str = "Sum of in-progress and submitted batch inference jobs using a base model for ";
/// `Records per input file per batch inference job for <model>`.
const RECORDS_PER_FILE: &str = "Records per input file per batch inference job for ";
/// `Records per batch inference job for <model>`.
const RECORDS_PER_JOB: &str = "Records per batch inference job for ";

/// What the quotas say of one model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelQuotas {
    /// The fewest records a job may have.
    pub min_records: Option<u64>,
    /// Submitted and in-progress jobs at once.
    pub concurrent_jobs: Option<u64>,
    /// The most records a job (and one input file) may have.
    pub max_records: Option<u64>,
}

impl ModelQuotas {
    /// Whether any quota named the model.
    pub fn any(&self) -> bool {
        self.min_records.is_some() || self.concurrent_jobs.is_some() || self.max_records.is_some()
    }
}

/// The quotas read from Service Quotas: (name, value).
#[derive(Debug, Clone, Default)]
pub struct QuotaTable {
    quotas: Vec<(String, f64)>,
}

impl QuotaTable {
    /// A table of `(name, value)` pairs.
    pub fn new(quotas: Vec<(String, f64)>) -> QuotaTable {
        QuotaTable { quotas }
    }

    /// What the quotas say of `model_id`.
    pub fn for_model(&self, model_id: &str) -> ModelQuotas {
        let id = words(model_id);
        let value = |prefix: &str| self.best(prefix, &id).map(|v| v.max(0.0) as u64);
        let per_file = value(RECORDS_PER_FILE);
        let per_job = value(RECORDS_PER_JOB);
        let max_records = match (per_file, per_job) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ModelQuotas { min_records: value(MIN_RECORDS), concurrent_jobs: value(CONCURRENT_JOBS), max_records }
    }

    /// The value of the quota of this kind whose model matches best (`None`: none, or a tie).
    fn best(&self, prefix: &str, id: &[String]) -> Option<f64> {
        let mut best: Option<(usize, f64)> = None;
        let mut tie = false;
        for (name, value) in &self.quotas {
            let Some(model) = name.strip_prefix(prefix) else { continue };
            let w = words(model);
            if w.is_empty() || !in_order(&w, id) {
                continue;
            }
            match best {
                Some((n, _)) if n > w.len() => {}
                Some((n, v)) if n == w.len() => tie |= v != *value,
                _ => {
                    best = Some((w.len(), *value));
                    tie = false;
                }
            }
        }
        best.filter(|_| !tie).map(|(_, v)| v)
    }
}

/// The words of a name: runs of letters and runs of digits, lower case.
fn words(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut last: Option<bool> = None;
    for c in s.chars() {
        if !c.is_ascii_alphanumeric() {
            last = None;
            continue;
        }
        let digit = c.is_ascii_digit();
        match out.last_mut() {
            Some(w) if last == Some(digit) => w.push(c.to_ascii_lowercase()),
            _ => out.push(c.to_ascii_lowercase().to_string()),
        }
        last = Some(digit);
    }
    out
}

/// Whether `needle` appears in `hay` in order (not necessarily next to each other).
fn in_order(needle: &[String], hay: &[String]) -> bool {
    let mut it = hay.iter();
    needle.iter().all(|n| it.any(|h| h == n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> QuotaTable {
        let q = |kind: &str, model: &str, v: f64| (format!("{kind}{model}"), v);
        QuotaTable::new(vec![
            q(MIN_RECORDS, "Claude 3 Haiku", 100.0),
            q(MIN_RECORDS, "Claude 3.5 Sonnet", 100.0),
            q(MIN_RECORDS, "Claude 3.5 Sonnet v2", 80.0),
            q(MIN_RECORDS, "Llama 4 Scout", 50.0),
            q(MIN_RECORDS, "Llama 3.1 8B Instruct", 60.0),
            q(MIN_RECORDS, "amazon.nova-pro-v1:0", 40.0),
            q(CONCURRENT_JOBS, "Claude 3 Haiku", 7.0),
            q(RECORDS_PER_FILE, "Claude 3 Haiku", 50000.0),
            q(RECORDS_PER_JOB, "Claude 3 Haiku", 20000.0),
            ("Batch inference job size (in GB) for Claude 3 Haiku".into(), 5.0),
        ])
    }

    #[test]
    fn a_quota_names_a_model_by_its_display_name_or_its_id_and_the_longest_name_wins() {
        let t = table();
        let haiku = t.for_model("anthropic.claude-3-haiku-20240307-v1:0");
        assert_eq!(haiku, ModelQuotas { min_records: Some(100), concurrent_jobs: Some(7), max_records: Some(20000) });
        assert_eq!(t.for_model("us.anthropic.claude-3-haiku-20240307-v1:0").concurrent_jobs, Some(7), "a profile");
        assert_eq!(t.for_model("anthropic.claude-3-5-sonnet-20241022-v2:0").min_records, Some(80));
        assert_eq!(t.for_model("anthropic.claude-3-5-sonnet-20240620-v1:0").min_records, Some(100));
        assert_eq!(t.for_model("meta.llama4-scout-17b-instruct-v1:0").min_records, Some(50));
        assert_eq!(t.for_model("meta.llama3-1-8b-instruct-v1:0").min_records, Some(60));
        assert_eq!(t.for_model("amazon.nova-pro-v1:0").min_records, Some(40));
        let none = t.for_model("amazon.nova-lite-v1:0");
        assert!(!none.any());
    }

    #[test]
    fn words_split_letters_from_digits() {
        assert_eq!(words("meta.llama3-1-8b"), ["meta", "llama", "3", "1", "8", "b"]);
        assert_eq!(words("Mistral Large 2 (24.07)"), ["mistral", "large", "2", "24", "07"]);
    }

    #[test]
    fn two_names_of_the_same_length_and_different_values_name_none() {
        let t = QuotaTable::new(vec![
            (format!("{MIN_RECORDS}Nova Pro"), 100.0),
            (format!("{MIN_RECORDS}amazon nova"), 50.0),
        ]);
        assert_eq!(t.for_model("amazon.nova-pro-v1:0").min_records, None);
    }
}
