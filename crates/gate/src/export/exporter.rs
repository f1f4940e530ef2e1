//! The trait every export format implements.

use ipcbench_record::RunRecord;

/// One export format of a run's figures.
pub trait Exporter {
    /// The format's JSON document for `record`.
    fn document(&self, record: &RunRecord) -> serde_json::Value;

    /// The bytes of the export file: [`Exporter::document`], pretty-printed.
    ///
    /// # Errors
    /// When the document cannot be serialized.
    fn serialize(&self, record: &RunRecord) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(&self.document(record))
    }
}
