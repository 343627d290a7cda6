//! The paper's switches of Fastformer attention reduce to the official form
//! when their extra weights are set to reproduce it.

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor};
use t2t_models::layers::{FastAttention, FastAttentionConfig, ScoreVectors, Sublayer};
use t2t_models::parity::max_abs_diff;

const DIM: usize = 32;
const HEADS: usize = 4;

fn input(device: &Device) -> Tensor<3> {
    Tensor::random([2, 9, DIM], Distribution::Normal(0.0, 1.0), device)
}

fn outputs_match(a: &FastAttention, b: &FastAttention, x: Tensor<3>) -> f64 {
    let ya: Vec<f32> = a
        .forward(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let yb: Vec<f32> = b.forward(x).into_data().try_to_vec::<f32>().unwrap();
    max_abs_diff(&ya, &yb)
}

#[test]
fn value_projection_equal_to_the_query_is_the_official_form() {
    let device = t2t_models::device::for_tests();
    let official = FastAttentionConfig::default().init(DIM, HEADS, &device);
    let mut paper = FastAttentionConfig {
        value_proj: true,
        per_head_scores: false,
    }
    .init(DIM, HEADS, &device);
    paper.query = official.query.clone();
    paper.key = official.key.clone();
    paper.transform = official.transform.clone();
    paper.query_att = official.query_att.clone();
    paper.key_att = official.key_att.clone();
    let x = input(&device);
    paper.value = Some(official.query.clone());
    assert!(outputs_match(&official, &paper, x.clone()) < 1e-6);
    // A different value projection must change the output.
    let mut other = official.query.clone();
    other.weight = Param::from_tensor(Tensor::random(
        [DIM, DIM],
        Distribution::Normal(0.0, 1.0),
        &device,
    ));
    paper.value = Some(other);
    assert!(outputs_match(&official, &paper, x) > 1e-3);
}

#[test]
fn per_head_scores_equal_a_block_diagonal_dense_layer() {
    let device = t2t_models::device::for_tests();
    let head_dim = DIM / HEADS;
    let per_head = |seed: f64| {
        Tensor::<2>::random(
            [HEADS, head_dim],
            Distribution::Uniform(-1.0, 1.0 + seed),
            &device,
        )
    };
    // Dense weights [H, heads] (burn layout [in, out]) that read only each head's own slice.
    let block_diagonal = |w: &Tensor<2>| {
        let w: Vec<f32> = w.to_data().try_to_vec::<f32>().unwrap();
        let mut dense = vec![0.0f32; DIM * HEADS];
        for h in 0..HEADS {
            for j in 0..head_dim {
                dense[(h * head_dim + j) * HEADS + h] = w[h * head_dim + j];
            }
        }
        Tensor::<2>::from_data(burn::tensor::TensorData::new(dense, [DIM, HEADS]), &device)
    };
    let mut paper = FastAttentionConfig {
        value_proj: false,
        per_head_scores: true,
    }
    .init(DIM, HEADS, &device);
    let (wq, wk) = (per_head(0.0), per_head(0.5));
    paper.query_att = ScoreVectors::PerHead(Param::from_tensor(wq.clone()));
    paper.key_att = ScoreVectors::PerHead(Param::from_tensor(wk.clone()));

    let mut official = FastAttentionConfig::default().init(DIM, HEADS, &device);
    official.query = paper.query.clone();
    official.key = paper.key.clone();
    official.transform = paper.transform.clone();
    for (att, w) in [(&mut official.query_att, &wq), (&mut official.key_att, &wk)] {
        let ScoreVectors::Dense(linear) = att else {
            unreachable!()
        };
        linear.weight = Param::from_tensor(block_diagonal(w));
        linear.bias = linear.bias.take().map(|b| b.map(|t| t.zeros_like()));
    }
    assert!(outputs_match(&official, &paper, input(&device)) < 1e-5);
}
