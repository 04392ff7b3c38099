//! How a file's chunks are kept: `replicas:N` whole copies, or `rs:K+M` Reed-Solomon shards
//! (FORMAT.md section 8), with the bounds both share.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Most shards (data plus parity) one stripe may have. Every shard of a stripe goes to its own
/// node, so this also bounds how many nodes one chunk is spread over.
pub const MAX_SHARDS: usize = 32;

/// How a file's chunks are kept: whole copies, or Reed-Solomon shards. Written and read as
/// `replicas:N` and `rs:K+M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Redundancy {
    /// N whole copies of every chunk on N distinct nodes; survives N - 1 lost nodes at N times
    /// the file size.
    Replicas(u8),
    /// K data and M parity shards of every chunk on K + M distinct nodes; survives M lost
    /// nodes at (K + M) / K times the file size.
    ErasureCoded {
        /// K: shards that together hold the chunk.
        data: u8,
        /// M: extra shards, each able to stand in for any lost one.
        parity: u8,
    },
}

impl Redundancy {
    /// Checks the bounds: 1 to [`MAX_SHARDS`] replicas; K and M at least 1 with K + M at most
    /// [`MAX_SHARDS`].
    pub fn validate(self) -> Result<Self> {
        match self {
            Redundancy::Replicas(n) if n >= 1 && usize::from(n) <= MAX_SHARDS => Ok(self),
            Redundancy::Replicas(_) => Err(Error::InvalidRedundancy(
                "replicas must be between 1 and 32",
            )),
            Redundancy::ErasureCoded { data, parity }
                if data >= 1
                    && parity >= 1
                    && usize::from(data) + usize::from(parity) <= MAX_SHARDS =>
            {
                Ok(self)
            }
            Redundancy::ErasureCoded { .. } => Err(Error::InvalidRedundancy(
                "rs:K+M needs K >= 1, M >= 1 and K + M <= 32",
            )),
        }
    }

    /// Nodes one chunk needs: N, or K + M.
    pub fn nodes(self) -> usize {
        match self {
            Redundancy::Replicas(n) => usize::from(n),
            Redundancy::ErasureCoded { data, parity } => usize::from(data) + usize::from(parity),
        }
    }

    /// Nodes that may be lost at once without losing the file: N - 1, or M.
    pub fn tolerates(self) -> usize {
        match self {
            Redundancy::Replicas(n) => usize::from(n).saturating_sub(1),
            Redundancy::ErasureCoded { parity, .. } => usize::from(parity),
        }
    }

    /// Bytes stored per byte of sealed data: N, or (K + M) / K.
    pub fn overhead(self) -> f64 {
        match self {
            Redundancy::Replicas(n) => f64::from(n),
            Redundancy::ErasureCoded { data, parity } => {
                (f64::from(data) + f64::from(parity)) / f64::from(data)
            }
        }
    }

    /// The manifest's encoding: kind (0 replicas, 1 Reed-Solomon) and two parameters.
    pub(crate) fn to_bytes(self) -> [u8; 3] {
        match self {
            Redundancy::Replicas(n) => [0, n, 0],
            Redundancy::ErasureCoded { data, parity } => [1, data, parity],
        }
    }

    /// Reads [`to_bytes`](Self::to_bytes), refusing unknown kinds and out-of-bounds values.
    pub(crate) fn from_bytes(bytes: [u8; 3]) -> Result<Self> {
        match bytes {
            [0, n, 0] => Redundancy::Replicas(n).validate(),
            [1, data, parity] => Redundancy::ErasureCoded { data, parity }.validate(),
            _ => Err(Error::InvalidRedundancy("unknown redundancy kind")),
        }
    }
}

impl fmt::Display for Redundancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Redundancy::Replicas(n) => write!(f, "replicas:{n}"),
            Redundancy::ErasureCoded { data, parity } => write!(f, "rs:{data}+{parity}"),
        }
    }
}

impl FromStr for Redundancy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        const USAGE: &str = "expected replicas:N or rs:K+M (for example replicas:3 or rs:4+2)";
        let number = |s: &str| -> Result<u8> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::InvalidRedundancy(USAGE));
            }
            s.parse().map_err(|_| Error::InvalidRedundancy(USAGE))
        };
        let s = s.trim();
        let spec = if let Some(n) = s.strip_prefix("replicas:") {
            Redundancy::Replicas(number(n)?)
        } else if let Some(km) = s.strip_prefix("rs:") {
            let (k, m) = km.split_once('+').ok_or(Error::InvalidRedundancy(USAGE))?;
            Redundancy::ErasureCoded {
                data: number(k)?,
                parity: number(m)?,
            }
        } else {
            return Err(Error::InvalidRedundancy(USAGE));
        };
        spec.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_print_and_bound() {
        for (text, spec) in [
            ("replicas:3", Redundancy::Replicas(3)),
            ("rs:4+2", Redundancy::ErasureCoded { data: 4, parity: 2 }),
            (" rs:1+1 ", Redundancy::ErasureCoded { data: 1, parity: 1 }),
            (
                "rs:16+16",
                Redundancy::ErasureCoded {
                    data: 16,
                    parity: 16,
                },
            ),
        ] {
            let parsed: Redundancy = text.parse().unwrap();
            assert_eq!(parsed, spec);
            assert_eq!(parsed.to_string().parse::<Redundancy>().unwrap(), spec);
            assert_eq!(Redundancy::from_bytes(spec.to_bytes()).unwrap(), spec);
        }
        for bad in [
            "",
            "replicas",
            "replicas:",
            "replicas:0",
            "replicas:33",
            "replicas:-1",
            "rs:4",
            "rs:4+0",
            "rs:0+2",
            "rs:20+13",
            "rs:4+2+1",
            "rs:+2",
            "rs:4+",
            "RS:4+2",
            "rs:256+1",
            "replicas:3x",
        ] {
            assert!(bad.parse::<Redundancy>().is_err(), "{bad:?}");
        }
        let rs = Redundancy::ErasureCoded { data: 4, parity: 2 };
        assert_eq!((rs.nodes(), rs.tolerates()), (6, 2));
        assert!((rs.overhead() - 1.5).abs() < 1e-9);
        assert!(Redundancy::from_bytes([2, 1, 1]).is_err());
        assert!(Redundancy::from_bytes([0, 3, 1]).is_err());
    }
}
