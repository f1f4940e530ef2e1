//! The bundled chart font (DejaVu Sans; licence in `assets/LICENSE-DejaVu.txt`), registered
//! with plotters' ab_glyph support as the `sans-serif` family, so rendering needs no system
//! font library. SVG files name `sans-serif`, so viewers use their own sans-serif face.

use std::sync::OnceLock;

use plotters::style::FontStyle;

use crate::ReportError;

/// The family name the bundled font is registered under; every chart text uses it.
pub(crate) const FAMILY: &str = "sans-serif";

pub(crate) static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the bundled font once per process.
///
/// # Errors
/// [`ReportError::Font`] if the bundled file cannot be parsed (a broken build).
pub(crate) fn register() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok());
    if ok { Ok(()) } else { Err(ReportError::Font) }
}
