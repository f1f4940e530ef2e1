//! Realistic request headers whose values repeat from request to request, as a browser's or
//! an API client's do: HTTP/1.1 sends them as text every time, HPACK indexes them once.

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

use crate::HttpError;

/// The most headers [`RequestHeaders::count`] may ask for (hyper's HTTP/1.1 server takes 100
/// in all, and the request has a few of its own).
pub const MAX_REQUEST_HEADERS: usize = 64;
/// The longest value [`RequestHeaders::value_bytes`] may ask for (nginx's HTTP/2 default
/// `http2_max_field_size` is 4 KiB).
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;
/// The most value bytes all extra headers of a request may add up to: HTTP/2 peers limit the
/// header list to 16 KiB by default (hyper's `max_header_list_size`, nginx's
/// `http2_max_header_size`), counting 32 bytes per entry and the names as well.
pub const MAX_HEADER_BYTES: usize = 12 * 1024;

/// How many extra request headers to send, and how long each value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeaders {
    /// Headers per request, on top of the method, path and `host`/`:authority`.
    pub count: usize,
    /// Bytes per value.
    pub value_bytes: usize,
}

impl Default for RequestHeaders {
    fn default() -> RequestHeaders {
        RequestHeaders {
            count: 8,
            value_bytes: 64,
        }
    }
}

/// Names in the order a typical client sends them; beyond these, `x-extra-<i>`.
const NAMES: [(&str, &str); 14] = [
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) ipcbench/0.1 "),
    (
        "accept",
        "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8 ",
    ),
    ("accept-language", "en-US,en;q=0.9,de;q=0.8,fr;q=0.7 "),
    ("accept-encoding", "identity "),
    ("cookie", "session=3f9a1c2e7b; theme=dark; consent=1; tracking="),
    ("referer", "http://localhost/catalog/items?page=2&sort=price&ref="),
    ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9."),
    ("x-request-id", "7f3c9e2a-41d8-4b6e-9c1a-"),
    ("x-forwarded-for", "127.0.0.1, 127.0.0.2, "),
    ("x-client-version", "ipcbench-client/0.1.0+build."),
    ("sec-ch-ua", "\"Chromium\";v=\"130\", \"Not?A_Brand\";v=\"99\", "),
    ("sec-fetch-mode", "navigate-"),
    ("x-correlation-id", "corr-8c61f0d4-"),
    ("x-tenant", "tenant-eu-west-"),
];

impl RequestHeaders {
    /// Checks the bounds.
    ///
    /// # Errors
    /// [`HttpError::InvalidConfig`].
    pub fn validate(&self) -> Result<(), HttpError> {
        if self.count > MAX_REQUEST_HEADERS
            || self.value_bytes > MAX_HEADER_VALUE_BYTES
            || self.count * self.value_bytes > MAX_HEADER_BYTES
        {
            return Err(HttpError::InvalidConfig(format!(
                "`request_headers` = {} x {} bytes; allowed up to {MAX_REQUEST_HEADERS} headers of up to \
                 {MAX_HEADER_VALUE_BYTES} bytes, {MAX_HEADER_BYTES} bytes in all",
                self.count, self.value_bytes
            )));
        }
        Ok(())
    }

    /// The headers: `count` of them, each value exactly `value_bytes` long, the same every call.
    pub fn build(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.count);
        for idx in 0..self.count {
            let (name, prefix) = match NAMES.get(idx) {
                Some(&(name, prefix)) => (HeaderName::from_static(name), prefix),
                None => (
                    HeaderName::try_from(format!("x-extra-{idx}")).expect("a valid header name"),
                    "extra-",
                ),
            };
            let value = fill(prefix, self.value_bytes, idx);
            headers.append(
                name,
                HeaderValue::try_from(value).expect("printable ASCII is a valid value"),
            );
        }
        headers
    }
}

/// `prefix` cut or padded with letters and digits to exactly `len` bytes.
fn fill(prefix: &str, len: usize, seed: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut value: String = prefix.chars().take(len).collect();
    let mut idx = seed * 7;
    while value.len() < len {
        value.push(ALPHABET[idx % ALPHABET.len()] as char);
        idx += 11;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_have_the_asked_count_and_size() {
        let spec = RequestHeaders {
            count: 20,
            value_bytes: 100,
        };
        spec.validate().unwrap();
        assert!(
            RequestHeaders {
                count: 64,
                value_bytes: 4096
            }
            .validate()
            .is_err()
        );
        let headers = spec.build();
        assert_eq!(headers.len(), 20);
        assert!(headers.values().all(|v| v.len() == 100));
        assert_eq!(headers, spec.build());
        let short = RequestHeaders {
            count: 3,
            value_bytes: 4,
        }
        .build();
        assert!(short.values().all(|v| v.len() == 4));
    }
}
