"""Which tests of files owned elsewhere belong to which tier, by node id, so their files need
no markers: tests/conftest.py applies these in pytest_collection_modifyitems.

An entry is a node id, or its start: `tests/test_x.py` (every test of the file),
`tests/test_x.py::test_y` (every parametrisation of it) or `tests/test_x.py::test_y[case]`; `*`
stands for any run of characters other than `:`. Test files that are not listed here mark their
own tests (`pytestmark = ...`). Two rules need no entries: a test that uses the `torchrun`
fixture is `distributed`, and one marked `inception` is `zoo`.

Tiers:
  slow         over ~3 s on 2 cores (measured with --durations=0); `make quick` leaves them out
  browser      drives Debian's headless Chromium
  distributed  spawns torchrun processes
  zoo          reads shipped weights: pixelsmith/zoo/weights, MTCNN's or Inception's
"""

from __future__ import annotations

TIERS: dict[str, list[str]] = {
    "browser": ["tests/test_web_page.py"],
    "distributed": [],
    "slow": [
        # over ~3 s
        "tests/test_web_page.py",
        "tests/test_backend_choice.py::test_onnxruntime_is_exported_once_kept_and_loaded_on_the_next_start",
        "tests/test_backends.py::test_each_backend_agrees_with_eager_and_is_timed",
        "tests/test_contract.py::test_conditional_gan_draws_the_classes_it_is_asked_for",
        "tests/test_export.py::test_the_exported_generator_draws_what_sample_draws",
        "tests/test_export.py::test_onnx_runtime_equals_eager_pytorch[stylegan]",
        "tests/test_invert.py::test_inversion_lowers_its_loss",
        "tests/test_invert.py::test_optimisation_from_the_encoder_beats_each_part",
        "tests/test_model_stylegan.py::test_train_step_lowers_the_loss_on_a_fixed_batch",
        "tests/test_style.py::test_style_loss_falls_and_content_stays",
        # 1.5-3 s, so that `make quick` stays under 2 minutes on 2 cores
        "tests/test_backends.py::test_a_broken_backend_is_reported_and_never_picked",
        "tests/test_compress.py::test_int8_onnx_runtime_output_is_close_to_fp32",
        "tests/test_compress.py::test_static_int8_of_a_conditional_generator_calibrates_on_its_classes",
        "tests/test_export.py::test_onnx_runtime_equals_eager_pytorch[cgan]",
        "tests/test_export.py::test_onnx_runtime_equals_eager_pytorch[cyclegan]",
        "tests/test_export.py::test_onnx_runtime_equals_eager_pytorch[vae]",
        "tests/test_faces_edit.py::test_anonymised_faces_are_no_closer_to_their_originals_than_strangers",
        "tests/test_model_cyclegan.py::test_train_step_lowers_loss_on_a_fixed_batch",
        "tests/test_model_cyclegan.py::test_translation_score_with_identity_generators_is_the_classifiers_own_rate",
        "tests/test_serve.py::test_a_faster_backend_serves_the_same_images_and_seeds_still_remake_them[onnxruntime]",
    ],
    "zoo": [
        "tests/test_backend_choice.py::test_serve_prints_the_progress_and_remembers_across_starts",
        "tests/test_export.py::test_cli_exports_the_shipped_generator_and_checks_it",
        "tests/test_faces_detect.py::test_mtcnn_*",
        "tests/test_gan_clusters.py::test_inversion_starts_in_the_cluster_d_puts_the_image_in",
        "tests/test_faces_detect.py::test_input_forms_agree",
        "tests/test_faces_detect.py::test_facenet_pytorch_is_never_imported",
        "tests/test_faces_detect.py::test_weights_are_hash_checked",
        "tests/test_faces_detect.py::test_align_puts_the_eyes_level_on_a_tilted_face",
        "tests/test_faces_detect.py::test_cli_detect_json_and_drawing",
        "tests/test_faces_detect.py::test_cli_align",
        "tests/test_faces_detect.py::test_cli_align_keeps_apart_inputs_that_share_a_stem",
        "tests/test_faces_edit.py::test_pixels_outside_the_regions_are_untouched[inpaint]",
        "tests/test_faces_edit.py::test_restore_changes_only_the_faces_and_sr_enlarges_the_rest_by_bicubic",
        # An inversion reports distances in Inception's features unless the model is 28x28 grey.
        "tests/test_attack_encoder.py::test_cli_attacks_a_generators_encoder_and_refuses_in_one_line",
        "tests/test_invert.py::test_cli_inverts_a_folder_and_reuses_its_encoder",
        "tests/test_invert.py::test_cli_refuses_bad_input_before_any_work",
        "tests/test_invert.py::test_inversion_lowers_its_loss",
        "tests/test_invert.py::test_optimisation_from_the_encoder_beats_each_part",
        "tests/test_invert.py::test_random_start_is_seeded",
        "tests/test_invert.py::test_saved_codes_round_trip_and_check_the_model",
        "tests/test_invert.py::test_vae_starts_from_its_posterior_mean",
        "tests/test_latent_edit.py::test_cli_bad_inputs_are_one_line_errors_and_write_nothing",
        "tests/test_latent_edit.py::test_cli_label_direction_on_the_shipped_gan_raises_the_target",
        "tests/test_latent_edit.py::test_cli_mixing_and_label_directions_refused_for_a_gan",
        "tests/test_latent_edit.py::test_cli_starts_from_images_and_code_files",
        "tests/test_openai_client.py::test_edit_by_an_operations_variant_name",
        "tests/test_openai_client.py::test_edit_inpaints_where_the_mask_is_transparent",
        "tests/test_openai_client.py::test_generate_with_a_prompt_answers_in_openais_shape",
        "tests/test_openai_client.py::test_what_the_service_refuses_raises_openais_errors",
        "tests/test_serve.py::test_load_served_names_models_and_refuses_non_generators",
        "tests/test_serve_edits.py::test_each_edit_answers_exactly_what_the_library_makes_of_the_upload",
        "tests/test_serve_edits.py::test_inpaint_texture_names_the_shipped_texture_model_as_the_library_does",
        "tests/test_serve_edits.py::test_face_detections_find_the_astronaut",
        "tests/test_serve_edits.py::test_fuzz_every_malformed_request_is_a_4xx_with_one_line_and_the_server_lives",
        "tests/test_serve_edits.py::test_outputs_carry_no_exif_or_location_even_when_the_upload_does",
        "tests/test_serve_edits.py::test_restore_faces_changes_the_face_only_and_sr_doubles_the_photo",
        "tests/test_serve_edits.py::test_the_service_caps_upload_and_answer_pixels_before_any_work",
        "tests/test_serve_edits.py::test_what_the_review_broke_is_a_one_line_4xx",
        "tests/test_serve_edits.py::test_a_detector_fallback_is_said_in_the_answers_notes",
    ],
}
