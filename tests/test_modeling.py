"""Model folders: a chat template supplied for a tokenizer that ships none (e.g. Vicuna)."""

from conftest import REPO
from safety_landscape.decoding import render_prompts
from safety_landscape.modeling import folder_digest, load_tokenizer, with_chat_template


def test_chat_template_view_links_the_weights_and_replaces_the_template(tmp_path, tiny_model_dir):
    view = with_chat_template(tiny_model_dir, REPO / "config" / "templates" / "vicuna-v1.1.jinja", tmp_path / "view")
    assert folder_digest(view) == folder_digest(tiny_model_dir)
    assert (tmp_path / "view" / "model.safetensors").is_symlink()
    tokenizer = load_tokenizer(view)
    text = tokenizer.decode(render_prompts(tokenizer, ["Hi there"], None, True)[0])
    assert text == (
        tokenizer.bos_token + "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions. USER: Hi there ASSISTANT:"
    )
    assert tokenizer.decode(render_prompts(tokenizer, ["Hi"], "", True)[0]) == tokenizer.bos_token + "USER: Hi ASSISTANT:"
    assert "<|im_start|>" in load_tokenizer(str(tiny_model_dir)).chat_template  # the original folder is untouched
