//! Password KDF: Argon2id v1.3 with parameters checked against a floor and a ceiling.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::password::Password;

/// KDF id of Argon2id v1.3 in the record header.
pub const KDF_ARGON2ID: u8 = 0x01;
/// KDF id of the insecure, fast test parameter set (Argon2id v1.3 with tiny costs). Only builds
/// with the `insecure-test-kdf` feature accept it.
pub const KDF_ARGON2ID_INSECURE_TEST: u8 = 0xFE;

/// Memory floor in KiB (19 MiB, OWASP's minimum for Argon2id).
pub const MIN_M_KIB: u32 = 19 * 1024;
/// Pass-count floor.
pub const MIN_T: u32 = 2;
/// Parallelism floor.
pub const MIN_P: u32 = 1;
/// Memory ceiling in KiB (1 GiB).
pub const MAX_M_KIB: u32 = 1024 * 1024;
/// Pass-count ceiling.
pub const MAX_T: u32 = 10;
/// Parallelism ceiling.
pub const MAX_P: u32 = 4;

/// Insecure test parameters: the smallest memory Argon2 allows for one lane, one pass.
const TEST_M_KIB: u32 = 8;
const TEST_T: u32 = 1;
const TEST_P: u32 = 1;

/// Length of the key-encryption key Argon2id produces.
pub(crate) const KEK_LEN: usize = 32;

/// Whether this build accepts the insecure test KDF (feature `insecure-test-kdf`, or this
/// crate's own unit tests).
pub(crate) const ALLOW_INSECURE: bool = cfg!(any(test, feature = "insecure-test-kdf"));

/// Argon2id cost parameters, as recorded in the header.
///
/// Construct with [`KdfParams::new`] (checked against floor and ceiling) or
/// [`KdfParams::default`] (m = 64 MiB, t = 3, p = 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KdfParams {
    m_kib: u32,
    t: u32,
    p: u32,
    insecure_test: bool,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
            insecure_test: false,
        }
    }
}

impl KdfParams {
    /// Argon2id parameters: memory `m_kib` KiB, `t` passes, `p` lanes. Refused below the floor
    /// ([`MIN_M_KIB`], [`MIN_T`], [`MIN_P`]) or above the ceiling ([`MAX_M_KIB`], [`MAX_T`],
    /// [`MAX_P`]).
    pub fn new(m_kib: u32, t: u32, p: u32) -> Result<Self> {
        check_params(KDF_ARGON2ID, m_kib, t, p, false)
    }

    /// The fast, **insecure** parameter set for tests (m = 8 KiB, t = 1, p = 1), recorded under
    /// its own KDF id ([`KDF_ARGON2ID_INSECURE_TEST`]) so a default build refuses to open what
    /// it seals. Only compiled with the `insecure-test-kdf` feature; downstream crates enable it
    /// from their dev-dependencies to keep their tests fast.
    #[cfg(any(test, feature = "insecure-test-kdf"))]
    pub fn insecure_test() -> Self {
        KdfParams {
            m_kib: TEST_M_KIB,
            t: TEST_T,
            p: TEST_P,
            insecure_test: true,
        }
    }

    /// Memory cost in KiB.
    pub fn m_kib(&self) -> u32 {
        self.m_kib
    }

    /// Number of passes.
    pub fn t(&self) -> u32 {
        self.t
    }

    /// Parallelism (lanes).
    pub fn p(&self) -> u32 {
        self.p
    }

    /// Whether a reader whose ceiling is `self` accepts a record made with `other`: no more
    /// memory, passes or lanes than `self` in any of the three.
    pub fn allows(&self, other: &KdfParams) -> bool {
        other.m_kib <= self.m_kib && other.t <= self.t && other.p <= self.p
    }

    /// The larger of `self` and `other` in each parameter (a ceiling that allows both).
    pub fn max(&self, other: &KdfParams) -> KdfParams {
        KdfParams {
            m_kib: self.m_kib.max(other.m_kib),
            t: self.t.max(other.t),
            p: self.p.max(other.p),
            insecure_test: false,
        }
    }

    /// Whether this is the insecure test parameter set.
    pub fn is_insecure_test(&self) -> bool {
        self.insecure_test
    }

    /// The KDF id these parameters are recorded under.
    pub(crate) fn kdf_id(&self) -> u8 {
        if self.insecure_test {
            KDF_ARGON2ID_INSECURE_TEST
        } else {
            KDF_ARGON2ID
        }
    }

    /// Runs Argon2id over the password and salt into a 32-byte key-encryption key. The work
    /// memory is allocated here and wiped before it is freed. Synchronous and slow by design:
    /// call it from a blocking thread.
    pub(crate) fn derive_kek(
        &self,
        password: &Password,
        salt: &[u8; 16],
    ) -> Result<Zeroizing<[u8; KEK_LEN]>> {
        // Re-check: never run with parameters a reader would refuse (and never allocate for
        // parameters above the ceiling).
        check_params(self.kdf_id(), self.m_kib, self.t, self.p, ALLOW_INSECURE)?;
        let params = Params::new(self.m_kib, self.t, self.p, Some(KEK_LEN)).map_err(Error::Kdf)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut memory = Zeroizing::new(vec![Block::default(); argon.params().block_count()]);
        let mut kek = Zeroizing::new([0u8; KEK_LEN]);
        argon
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut kek[..],
                &mut memory[..],
            )
            .map_err(Error::Kdf)?;
        Ok(kek)
    }
}

/// Checks KDF id and parameters read from a header (or given by a writer) *before* anything is
/// allocated or run. `allow_insecure` says whether the insecure test KDF id is accepted; the
/// crate passes [`ALLOW_INSECURE`], tests pass both values.
pub(crate) fn check_params(
    kdf_id: u8,
    m_kib: u32,
    t: u32,
    p: u32,
    allow_insecure: bool,
) -> Result<KdfParams> {
    match kdf_id {
        KDF_ARGON2ID => {
            if m_kib > MAX_M_KIB || t > MAX_T || p > MAX_P {
                return Err(Error::KdfParamsTooExpensive { m_kib, t, p });
            }
            if m_kib < MIN_M_KIB || t < MIN_T || p < MIN_P {
                return Err(Error::KdfParamsTooWeak { m_kib, t, p });
            }
            Ok(KdfParams {
                m_kib,
                t,
                p,
                insecure_test: false,
            })
        }
        KDF_ARGON2ID_INSECURE_TEST => {
            if !allow_insecure {
                return Err(Error::InsecureTestKdf);
            }
            if (m_kib, t, p) != (TEST_M_KIB, TEST_T, TEST_P) {
                return Err(Error::MalformedHeader(
                    "insecure test KDF with non-test parameters",
                ));
            }
            Ok(KdfParams {
                m_kib,
                t,
                p,
                insecure_test: true,
            })
        }
        other => Err(Error::Unsupported {
            field: "kdf",
            value: u32::from(other),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_within_bounds() {
        let d = KdfParams::default();
        assert_eq!((d.m_kib(), d.t(), d.p()), (65536, 3, 1));
        assert_eq!(KdfParams::new(65536, 3, 1).unwrap(), d);
        assert!(!d.is_insecure_test());
    }

    #[test]
    fn floor_and_ceiling() {
        assert!(KdfParams::new(MIN_M_KIB, MIN_T, MIN_P).is_ok());
        assert!(KdfParams::new(MAX_M_KIB, MAX_T, MAX_P).is_ok());
        for (m, t, p) in [
            (MIN_M_KIB - 1, 3, 1),
            (65536, 1, 1),
            (65536, 3, 0),
            (0, 0, 0),
        ] {
            assert!(
                matches!(KdfParams::new(m, t, p), Err(Error::KdfParamsTooWeak { .. })),
                "{m} {t} {p}"
            );
        }
        for (m, t, p) in [
            (MAX_M_KIB + 1, 3, 1),
            (65536, MAX_T + 1, 1),
            (65536, 3, MAX_P + 1),
            (u32::MAX, u32::MAX, u32::MAX),
            // Ceiling wins over floor: never "too weak" when anything is too expensive.
            (u32::MAX, 0, 0),
        ] {
            assert!(
                matches!(
                    KdfParams::new(m, t, p),
                    Err(Error::KdfParamsTooExpensive { .. })
                ),
                "{m} {t} {p}"
            );
        }
    }

    #[test]
    fn insecure_test_kdf_gate() {
        let (m, t, p) = (TEST_M_KIB, TEST_T, TEST_P);
        assert!(matches!(
            check_params(KDF_ARGON2ID_INSECURE_TEST, m, t, p, false),
            Err(Error::InsecureTestKdf)
        ));
        let ok = check_params(KDF_ARGON2ID_INSECURE_TEST, m, t, p, true).unwrap();
        assert_eq!(ok, KdfParams::insecure_test());
        assert_eq!(ok.kdf_id(), KDF_ARGON2ID_INSECURE_TEST);
        // The test id with other parameters is malformed, never "real" Argon2id.
        assert!(matches!(
            check_params(KDF_ARGON2ID_INSECURE_TEST, 65536, 3, 1, true),
            Err(Error::MalformedHeader(_))
        ));
        // The insecure parameters under the real id are a downgrade.
        assert!(matches!(
            check_params(KDF_ARGON2ID, m, t, p, true),
            Err(Error::KdfParamsTooWeak { .. })
        ));
    }

    #[test]
    fn unknown_kdf_id_is_unsupported() {
        for id in [0u8, 2, 0x7F, 0xFD, 0xFF] {
            assert!(matches!(
                check_params(id, 65536, 3, 1, true),
                Err(Error::Unsupported { field: "kdf", .. })
            ));
        }
    }

    #[test]
    fn kek_is_deterministic_and_password_dependent() {
        let params = KdfParams::insecure_test();
        let salt = [7u8; 16];
        let a = params.derive_kek(&Password::new("a"), &salt).unwrap();
        let a2 = params.derive_kek(&Password::new("a"), &salt).unwrap();
        let b = params.derive_kek(&Password::new("b"), &salt).unwrap();
        let a_other_salt = params.derive_kek(&Password::new("a"), &[8u8; 16]).unwrap();
        assert_eq!(*a, *a2);
        assert_ne!(*a, *b);
        assert_ne!(*a, *a_other_salt);
    }

    #[test]
    fn argon2id_matches_reference_hash_password_into() {
        // Our wiped-memory path must compute exactly what argon2's own API computes.
        let params = KdfParams::insecure_test();
        let salt = [1u8; 16];
        let ours = params.derive_kek(&Password::new("pw"), &salt).unwrap();
        let argon = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, Some(32)).unwrap(),
        );
        let mut theirs = [0u8; 32];
        argon.hash_password_into(b"pw", &salt, &mut theirs).unwrap();
        assert_eq!(*ours, theirs);
    }
}
