"""Sensitive topics: everyday customer-service Turkish never hands off, the real topics always do.

Folding diacritics merges words: "öldü" (died) becomes "oldu" (became), which is in half the messages a
shop receives. These lists are what a customer actually types, with and without Turkish letters.
"""

from __future__ import annotations

import pytest

from assist.safety import assess, sensitive_topic

EVERYDAY = [
    "oldu",
    "olduğu",
    "olduğunu",
    "Tamam oldu, teşekkürler",
    "tamam oldu tesekkurler",
    "Uçuşum iptal oldu",
    "ucusum iptal oldu",
    "Siparişim iptal oldu, param ne zaman yatar?",
    "Faturam ne kadar oldu?",
    "faturam ne kadar oldu",
    "Siparişim teslim oldu mu?",
    "siparisim teslim oldu mu",
    "Kargom teslim edilmiş olmuş mu?",
    "Ne oldu bilmiyorum, sayfa açılmıyor",
    "Ödeme oldu mu acaba?",
    "Ödemem onaylandı mı, bir sorun olduğunu düşünüyorum",
    "Bu ürün olumlu yorum almış",
    "olumsuz bir deneyim yaşamadım",
    "olum naber kargo nerde",
    "Kargo geldi",
    "kargo geldi ama kutu ezik",
    "Kargom hâlâ gelmedi",
    "Kurye kapıyı çaldı mı bilmiyorum",
    "Kapıyı çaldılar ama evde yoktum",
    "kapiyi caldilar ama evde yoktum",
    "Zil çalındı ama kimse yoktu",
    "Makine çalışıyor mu?",
    "makine calisiyor mu",
    "Uygulama çalışmıyor",
    "Çalışma saatleriniz nedir?",
    "calisma saatleriniz nedir",
    "Kampanya hâlâ çalışıyor mu?",
    "Bu ayakkabının ölçüsü nedir?",
    "olcu tablosu nerede",
    "Ölçüler doğru mu?",
    "Davet kodumu nereye yazacağım?",
    "davetiye kartı var mı",
    "Devam eden siparişim var",
    "Davranışınız çok nazikti",
    "Yangın söndürücü stokta var mı?",
    "yangin sondurucu var mi",
    "Yangın indirimi ne zaman bitiyor?",
    "Yara bandı satıyor musunuz?",
    "Zehir gibi soğuk bir buzdolabı",
    "Dior Poison parfüm stokta var mı?",
    "Yasal süre içinde iade edebilir miyim?",
    "yasal sure icinde iade",
    "İade kodum çalışmıyor",
    "Kart ile ödeme yapabilir miyim?",
    "Kartım geçmedi",
    "Şifremi unuttum",
    "sifremi unuttum",
    "Hesabım kilitlendi",
    "Taksit seçenekleri neler?",
    "Kargo ücreti ne kadar?",
    "Siparişimi nasıl iptal ederim?",
    "Ürün bozuk geldi, değişim istiyorum",
    "Faturamı e-posta ile gönderir misiniz?",
    "Mağaza adresiniz nedir?",
    "Hediye paketi yapıyor musunuz?",
    "Olmadı, tekrar deneyeceğim",
    "olmadi tekrar deneyecegim",
    "Is my order delivered?",
    "How much is shipping?",
    "My card was declined",
]

SENSITIVE = [
    ("Annem öldü, siparişi iptal etmek istiyorum", "sağlık ve güvenlik"),
    ("ÖLDÜ", "sağlık ve güvenlik"),
    ("Kedim mamanızdan sonra öldü", "sağlık ve güvenlik"),
    ("Babam vefat etti, üyeliğini kapatın", "sağlık ve güvenlik"),
    ("babam vefat etti", "sağlık ve güvenlik"),
    ("Eşim trafik kazasında hayatını kaybetti", "sağlık ve güvenlik"),
    ("esim hayatini kaybetti", "sağlık ve güvenlik"),
    ("Ürününüz yüzünden köpeğim ölmüş", "sağlık ve güvenlik"),
    ("Ürünü yedikten sonra zehirlendim", "sağlık ve güvenlik"),
    ("urunu yedim zehirlendim", "sağlık ve güvenlik"),
    ("Şarj aleti yangın çıkardı", "sağlık ve güvenlik"),
    ("Cihaz patladı ve yaralandım", "sağlık ve güvenlik"),
    ("alerjik reaksiyon geçirdim", "sağlık ve güvenlik"),
    ("Avukatıma danışacağım", "hukuki"),
    ("avukatima danisacagim", "hukuki"),
    ("Size dava açacağım", "hukuki"),
    ("dava acacagim", "hukuki"),
    ("Konuyu mahkemeye taşıyacağım", "hukuki"),
    ("Tüketici hakem heyetine başvuracağım", "hukuki"),
    ("Yasal yollara başvuracağım", "hukuki"),
    ("I will talk to my lawyer", "hukuki"),
    ("Kartım çalındı", "dolandırıcılık"),
    ("kartim calindi", "dolandırıcılık"),
    ("Hesabımı ele geçirdiler", "dolandırıcılık"),
    ("Dolandırıldım", "dolandırıcılık"),
    ("dolandirildim", "dolandırıcılık"),
    ("Kartımdan izinsiz çekim yapılmış", "dolandırıcılık"),
    ("Benim yapmadığım bir sipariş var", "dolandırıcılık"),
    ("Telefonumu çaldılar, hesabımı kapatın", "dolandırıcılık"),
    ("Hesabım hacklendi", "dolandırıcılık"),
    ("Kişisel verilerimi silmenizi istiyorum", "kişisel veri talebi"),
    ("KVKK kapsamında başvuru yapmak istiyorum", "kişisel veri talebi"),
]


def test_there_are_enough_everyday_sentences_to_mean_something() -> None:
    assert len(EVERYDAY) >= 60 and len(set(EVERYDAY)) == len(EVERYDAY)


@pytest.mark.parametrize("text", EVERYDAY)
def test_everyday_customer_service_messages_raise_no_sensitive_topic(text: str) -> None:
    assert sensitive_topic(text) is None
    assert assess(text).sensitive_topic is None


@pytest.mark.parametrize(("text", "topic"), SENSITIVE)
def test_sensitive_messages_raise_their_topic(text: str, topic: str) -> None:
    assert assess(text).sensitive_topic == topic


def test_a_word_that_only_folding_makes_sensitive_never_hands_off_whatever_surrounds_it() -> None:
    # "öldü" needs its diacritics; the folded sentence is the everyday "her şey oldu".
    assert assess("Kuşum öldü").sensitive_topic == "sağlık ve güvenlik"
    assert assess("Kuşum oldu").sensitive_topic is None
    assert assess("Ölüm riski var mı?").sensitive_topic == "sağlık ve güvenlik"
    assert assess("Olum riski var mi?").sensitive_topic is None
