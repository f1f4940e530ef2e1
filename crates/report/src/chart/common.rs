//! What every chart module shares: the default size, the drawing error and a chart's listing.

use plotters::prelude::DrawingAreaErrorKind;

/// Default chart size: readable on a laptop and in print, quick to encode.
pub(crate) const SIZE: (u32, u32) = (1200, 700);

/// A drawing error from plotters, as text (its error types are generic over the backend).
#[derive(Debug)]
pub(crate) struct DrawFailed(pub String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawFailed {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawFailed(e.to_string())
    }
}

/// A chart of a run, listed before it is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartInfo {
    /// File name without extension (`latency-vs-size-pingpong`); the files are
    /// `charts/<stem>.png` and `charts/<stem>.svg`.
    pub stem: String,
    /// The chart's title.
    pub title: String,
    /// The scenario whose cases it shows.
    pub scenario: String,
}
