//! Every registered T2T-ViT has the official parameter counts, and MACs
//! within 1% of fvcore's counts on the official code (REFERENCE.md §1.1).

use burn::tensor::Tensor;
use t2t_models::registry;
use t2t_models::registry::report;
use t2t_models::Taps;

fn info(name: &str, img_size: usize) -> t2t_models::registry::Report {
    let mut config = registry::find(name).unwrap().config;
    config
        .apply_kwargs(&[format!("img_size={img_size}")])
        .unwrap();
    report(name, &config).unwrap()
}

fn assert_gmacs(name: &str, counted: u64, official_gmacs: f64) {
    let ratio = counted as f64 / (official_gmacs * 1e9);
    assert!(
        (ratio - 1.0).abs() < 0.01,
        "{name}: {counted} MACs vs official {official_gmacs} G"
    );
}

#[test]
fn official_parameter_counts_and_macs() {
    // name, params all, params trainable, fvcore GMACs at 224
    let table: &[(&str, usize, usize, Option<f64>)] = &[
        ("t2t_vit_7", 4_310_222, 4_255_694, Some(1.156)),
        ("t2t_vit_10", 5_889_230, 5_834_702, Some(1.527)),
        ("t2t_vit_12", 6_941_902, 6_887_374, Some(1.775)),
        ("t2t_vit_14", 21_545_550, 21_465_806, Some(4.800)),
        ("t2t_vit_19", 39_177_422, 39_085_070, Some(8.503)),
        ("t2t_vit_24", 64_105_934, 64_000_974, Some(13.692)),
        ("t2t_vit_t_14", 21_541_070, 21_465_422, Some(6.106)),
        ("t2t_vit_t_19", 39_172_942, 39_084_686, Some(9.808)),
        ("t2t_vit_t_24", 64_101_454, 64_000_590, Some(14.998)),
        ("t2t_vit_14_resnext", 21_545_550, 21_465_806, Some(4.800)),
        ("t2t_vit_14_wide", 25_156_302, 25_000_910, Some(5.242)),
        ("t2t_vit_14_se", 21_803_598, 21_723_854, None),
        ("t2t_vit_dense", 23_647_062, 23_617_750, None),
        ("t2t_vit_16_ghost", 16_253_262, 16_173_518, None),
    ];
    for &(name, all, trainable, gmacs) in table {
        let r = info(name, 224);
        assert_eq!(
            (r.params_all, r.params_trainable),
            (all, trainable),
            "{name}"
        );
        if let Some(g) = gmacs {
            assert_gmacs(name, r.macs, g);
        }
    }
}

#[test]
fn complexity_at_384_and_both_conventions() {
    let r = info("t2t_vit_14", 384);
    assert_eq!(r.params_all, 21_691_470);
    assert_gmacs("t2t_vit_14@384", r.macs, 16.42);
    let t2t = r
        .stages
        .iter()
        .find(|s| s.name == "tokens_to_token")
        .unwrap();
    assert_gmacs("t2t_vit_14@384 T2T module", t2t.macs, 0.896);

    let r = info("t2t_vit_7", 384);
    assert_eq!(r.params_all, 4_407_502);
    assert_gmacs("t2t_vit_7@384", r.macs, 4.175);

    // Stage split at 224 and the weights-only convention (timm's table).
    let r = info("t2t_vit_7", 224);
    assert_gmacs("t2t_vit_7 T2T module", r.stages[0].macs, 0.290);
    assert_gmacs("t2t_vit_7 blocks", r.stages[1].macs, 0.866);
    assert_gmacs("t2t_vit_7 weights only", r.macs_no_attn_matmul, 0.9755);
    assert_gmacs(
        "t2t_vit_14 weights only",
        info("t2t_vit_14", 224).macs_no_attn_matmul,
        4.334,
    );
    assert_gmacs(
        "t2t_vit_t_14 weights only",
        info("t2t_vit_t_14", 224).macs_no_attn_matmul,
        4.334,
    );
    let t_14 = info("t2t_vit_t_14", 224);
    assert_gmacs("t2t_vit_t_14 T2T module", t_14.stages[0].macs, 1.610);
}

#[test]
fn image_sizes_must_tile_the_soft_splits() {
    let mut config = registry::find("t2t_vit_7").unwrap().config;
    let err = config
        .apply_kwargs(&["img_size=200"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("200") && err.contains("16"), "{err}");
    let cifar = registry::find("t2t_vit_7_cifar").unwrap().config;
    let model = cifar.init(&t2t_models::device::for_tests()).unwrap();
    let images = Tensor::<4>::zeros([2, 3, 32, 32], &t2t_models::device::for_tests());
    let mut taps = Taps::on();
    let logits = model.forward_tapped(images, &mut taps);
    assert_eq!(logits.dims(), [2, 10]);
    let recorded = taps.into_recorded();
    let tokens = recorded.iter().find(|(n, _)| n == "t2t_tokens").unwrap();
    assert_eq!(
        tokens.1.shape().to_vec(),
        vec![2, 64, 256],
        "a 32x32 image gives an 8x8 grid"
    );
}

#[test]
fn vit_and_fvit_complexity() {
    // name, params (timm, rounded to 10k), fvcore GMACs at the native size
    for (name, params_m, gmacs) in [
        ("vit_tiny_patch16_224", 5.72, 1.26),
        ("vit_small_patch16_224", 22.05, 4.61),
        ("vit_small_patch32_224", 22.88, 1.15),
        ("vit_base_patch16_224", 86.57, 17.58),
        ("vit_base_patch32_224", 88.22, 4.41),
        ("vit_base_patch16_384", 86.86, 55.54),
    ] {
        let r = report(name, &registry::find(name).unwrap().config).unwrap();
        assert!(
            (r.params_all as f64 / 1e6 - params_m).abs() < 0.006,
            "{name}: {}",
            r.params_all
        );
        assert_gmacs(name, r.macs, gmacs);
    }
    let vit = info("vit_base_patch16_384", 384);
    assert_gmacs("ViT-B/16@384 weights only", vit.macs_no_attn_matmul, 49.35);

    // The FViT paper's table counts weights only: 79M and 45.2 GFLOPs for
    // FViT-B/16 at 384, plus 0.22M params / 0.13 GMACs of the two score layers
    // per block that its arithmetic leaves out (REFERENCE.md §3.5).
    let fvit = info("fvit_base_patch16_384", 384);
    let params_m = fvit.params_all as f64 / 1e6;
    assert!((79.5..=80.1).contains(&params_m), "{params_m}");
    assert_gmacs(
        "FViT-B/16@384 weights only",
        fvit.macs_no_attn_matmul,
        45.27 + 0.13,
    );
    assert!(
        fvit.macs < vit.macs_no_attn_matmul,
        "additive attention removes one HxH matrix per layer"
    );
}
